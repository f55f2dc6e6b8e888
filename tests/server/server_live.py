"""Real servers on loopback for the server tests: uvicorn in a thread, on a socket bound before it
starts (the port is known at once and connections wait in the backlog: no polling, no sleep).

`RecordingUpstream` is the deterministic fake of the *model*: veil's echo app (an OpenAI-compatible
server) behind a recorder that keeps every request body it receives, and that misbehaves on
demand by model name (`fail-429`, `fail-500`, `not-json`, `slow`, `cut`, `stall`, `break`).
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import IO, Any

import anyio
import httpx
import uvicorn
from canaries import SCANNER
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from veil_server.echo import create_echo_app


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Run `app` under uvicorn on loopback; yields its base URL (http://127.0.0.1:PORT).

    uvicorn logs at DEBUG through the root logger (no handlers of its own): the canary plugin scans
    every record. Its access log is off, as `veil serve` has it (the gateway's own access log,
    `veil_server.access`, is on). Before it stops, a gateway's /metrics page is scanned too."""
    sock = bound_socket()
    config = uvicorn.Config(app, log_config=None, log_level="debug", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=2)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield url
    finally:
        scan_metrics(url)
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def scan_output(source: str, lines: list[str], rest: IO[str] | None = None) -> None:
    """Hand what a server run in a subprocess printed (and, from `rest`, what it printed since,
    read to its end: call it once the process has exited) to the canary scanner."""
    remaining = rest.read().splitlines() if rest is not None else []
    for line in [*lines, *remaining]:
        SCANNER.observe(source, line, kind="lines of subprocess output")


def scan_metrics(url: str) -> None:
    """Hand a gateway's Prometheus page to the canary scanner (other apps have none: nothing to do)."""
    with suppress(httpx.HTTPError):
        page = httpx.get(f"{url}/metrics", timeout=5)
        if page.status_code == 200 and page.text.startswith("# HELP"):
            SCANNER.observe(f"/metrics of {url}", page.text, kind="/metrics pages")


@dataclass
class Recorded:
    path: str
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


async def read_body(receive: Receive) -> bytes:
    """The whole body of an ASGI request, however many messages it came in."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


@dataclass
class RecordingUpstream:
    """The echo model behind a recorder, with failures chosen by the request's model name."""

    requests: list[Recorded] = field(default_factory=list)
    disconnected: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    disconnect_seen: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._echo = create_echo_app(chunk=3)

    def bodies(self) -> str:
        return "\n".join(r.body.decode("utf-8", "replace") for r in self.requests)

    def clear(self) -> None:
        self.requests.clear()
        self.disconnected.clear()
        self.disconnect_seen.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._echo(scope, receive, send)
            return
        body = await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append(Recorded(scope["path"], body, headers))
        model = ""
        with suppress(ValueError, AttributeError):
            model = str(json.loads(body).get("model", ""))
        if model in _FAILURES:
            await _FAILURES[model](self, scope, body, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self._echo(scope, replay, send)


async def _json(send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *(headers or [])]})  # fmt: skip
    await send({"type": "http.response.body", "body": data})


async def _fail_429(upstream: RecordingUpstream, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
    error = {"message": "Rate limit reached for requests", "type": "requests", "param": None,
             "code": "rate_limit_exceeded"}  # fmt: skip
    await _json(send, 429, {"error": error}, [(b"retry-after", b"7")])


async def _fail_500(upstream: RecordingUpstream, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
    await _json(send, 500, {"error": {"message": "The server had an error", "type": "server_error", "param": None,
                                      "code": None}})  # fmt: skip


async def _not_json(upstream: RecordingUpstream, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
    await _json(send, 200, b"<html>not json</html>")


async def _slow(upstream: RecordingUpstream, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
    # Answers only when the test releases it (after the gateway has timed out).
    await anyio.to_thread.run_sync(upstream.release.wait, 10)
    await _json(send, 200, {"late": True})


def _chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    payload = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "x",
               "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}  # fmt: skip
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def _start_stream(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})


async def _cut(upstream: RecordingUpstream, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
    """A stream that stops (cleanly) before any finish_reason or [DONE]."""
    await _start_stream(send)
    await send({"type": "http.response.body", "body": _chunk("Bonjour"), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _break(upstream: RecordingUpstream, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
    """A stream that sends an error event in the middle (as OpenAI does on an internal failure)."""
    await _start_stream(send)
    await send({"type": "http.response.body", "body": _chunk("Bonjour"), "more_body": True})
    error = {"error": {"message": "The model crashed", "type": "server_error", "param": None, "code": None}}
    await send({"type": "http.response.body", "body": b"data: " + json.dumps(error).encode() + b"\n\n"})


async def _stall(upstream: RecordingUpstream, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
    """One chunk, then nothing until the gateway goes away (the client disconnected)."""
    await _start_stream(send)
    await send({"type": "http.response.body", "body": _chunk("Bonjour"), "more_body": True})
    message = await receive()  # returns http.disconnect when the gateway closes the upstream request
    upstream.disconnected.append(message["type"])
    upstream.disconnect_seen.set()


async def _mangle(upstream: RecordingUpstream, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
    """A model that mangles the tokens it was given and makes one up (unary and streamed)."""
    request = json.loads(body)
    text = request["messages"][-1]["content"]
    answer = re.sub(r"\{\{([A-Z_]+)_(\d+)\}\}", lambda m: "{{ " + m.group(1).lower() + "_" + m.group(2) + " }}", text)
    answer += " Voir aussi {{PHONE_9}}."
    if not request.get("stream"):
        message = {"role": "assistant", "content": answer}
        await _json(send, 200, {"id": "chatcmpl-m", "object": "chat.completion", "created": 1, "model": "mangle",
                                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})  # fmt: skip
        return
    await _start_stream(send)
    for start in range(0, len(answer), 2):
        await send({"type": "http.response.body", "body": _chunk(answer[start : start + 2]), "more_body": True})
    await send({"type": "http.response.body", "body": _chunk(None, "stop") + b"data: [DONE]\n\n"})


_FAILURES = {"fail-429": _fail_429, "fail-500": _fail_500, "not-json": _not_json, "slow": _slow, "cut": _cut,
             "break": _break, "stall": _stall, "mangle": _mangle}  # fmt: skip
