"""The model behind the gateway in the load test: veil's echo app (it answers with the text it was
sent, so a restored answer must equal the client's text) in a process of its own, with faults
switched at run time through a control endpoint:

    POST /control {"delay": 3.0, "fail_rate": 0.3}

- `delay`: each chat request waits a random 0…delay seconds before its answer (a stream waits
  before its first chunk and a little between chunks); with the gateway's provider timeout below
  `delay`, some of them time out at the gateway (504).
- `fail_rate`: that share of chat requests fails, in turn: a 500 error object, a 503 error object,
  a 500 with a body that is not JSON, or (for streams) a connection dropped after the first chunk.

Run: `python tests/reliability/load_upstream.py PORT` (prints uvicorn's start-up line on stderr).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sys
from typing import Any

import uvicorn
from starlette.types import Message, Receive, Scope, Send
from veil_server.echo import create_echo_app
from veil_server.middleware import _replay  # the gateway replays a read body the same way


class FaultyUpstream:
    def __init__(self) -> None:
        self.echo = create_echo_app(chunk=6)
        self.delay = 0.0
        self.fail_rate = 0.0
        self.random = random.Random(7)
        self.failures = itertools.cycle(("500", "503", "not-json", "drop"))
        self.counts: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.echo(scope, receive, send)
            return
        body = await _body(receive)
        if scope["path"] == "/control":
            if scope["method"] == "POST":
                changes = json.loads(body or b"{}")
                self.delay = float(changes.get("delay", self.delay))
                self.fail_rate = float(changes.get("fail_rate", self.fail_rate))
            state = {"delay": self.delay, "fail_rate": self.fail_rate, "counts": self.counts}
            await _answer(send, 200, json.dumps(state).encode())
            return
        if scope["path"].endswith("/chat/completions"):
            self._count("requests")
            streaming = b'"stream":true' in body.replace(b" ", b"")
            if self.delay:
                await asyncio.sleep(self.random.uniform(0, self.delay))
            if self.fail_rate and self.random.random() < self.fail_rate:
                failure = next(self.failures)
                self._count(failure)
                if failure == "500":
                    await _answer(send, 500, _error("The server had an error while processing your request."))
                elif failure == "503":
                    await _answer(send, 503, _error("The engine is currently overloaded, please try again later."))
                elif failure == "not-json":
                    await _answer(send, 500, b"<html>Internal Server Error</html>", b"text/html")
                elif streaming:
                    await self._drop_mid_stream(scope, body, send)
                else:
                    raise ConnectionAbortedError("dropped")  # uvicorn closes the connection: no answer at all
                return
        await self.echo(scope, _replay(body, receive), self._paced(send) if self.delay else send)

    def _paced(self, send: Send) -> Send:
        async def paced(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("more_body"):
                await asyncio.sleep(self.random.uniform(0, self.delay / 20))
            await send(message)

        return paced

    async def _drop_mid_stream(self, scope: Scope, body: bytes, send: Send) -> None:
        """The first chunk of a real answer, then the connection goes away."""
        sent = 0

        async def first_chunk_only(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.body":
                sent += 1
                if sent > 2:
                    raise ConnectionResetError("dropped mid-stream")
            await send(message)

        await self.echo(scope, _replay(body, _never), first_chunk_only)


async def _never() -> Message:
    await asyncio.Event().wait()
    raise AssertionError


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _error(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "server_error", "param": None, "code": None}}).encode()


async def _answer(send: Send, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
    headers: list[Any] = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(FaultyUpstream(), host="127.0.0.1", port=int(sys.argv[1]), log_level="info", access_log=False,
                timeout_graceful_shutdown=1)  # fmt: skip
