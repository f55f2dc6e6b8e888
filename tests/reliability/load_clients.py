"""The load: N concurrent clients (asyncio + httpx, one process) against two replicas, each
recording every request it makes and every token it receives, and checking each answer on the
spot. What a client does, in turn (its replica alternates, as behind a round-robin balancer):

- `chat`: a chat completion whose message holds an e-mail address and a phone number, in a named
  scope shared by ten clients (so both replicas number tokens of one scope at once). The echo
  model answers with what it got (tokens), so the restored answer must equal the text sent; the
  `veil.mapping` block gives the tokens, recorded.
- `stream`: the same, streamed; the concatenated deltas must equal the text sent.
- `anonymize`: POST /v1/anonymize on one replica, then PUT /v1/anonymize (restore with the scope)
  on the *other*: the restored text must equal the original.
- `bad`: a client mistake (invalid JSON, unknown model, no messages, a restore with neither
  mapping nor scope, a wrong key): must be a 4xx OpenAI error object, never a 5xx.
- one client in five uses the rate-limited key for all its requests (`limited`).

A replica that refuses the connection (it is down: nothing was sent) is retried on the other
replica at once. Any other transport error after the request was sent is recorded as
`interrupted` and not retried (the request may or may not have run).

Definitions the checks use:

- **completed**: the client received the whole answer: a 200 with its JSON body, or a stream
  that ended with `data: [DONE]`. Its `x-request-id` is known.
- **admitted**: the gateway gave the answer an `x-request-id` (it is set only once the limiter
  has admitted the request; a 429 has none).
- **interrupted**: sent, then the connection broke (a replica killed mid-request). It may have
  been served and counted; the client cannot know.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

CLIENT_TIMEOUT = 60.0
"""Seconds a client waits for a whole answer (connection, request, last byte). The gateway's
upstream timeout is 2 s; beyond that a request only waits its turn on a loaded machine (with
200 clients on 2 shared cores, queueing alone reached 34 s): a request this slow has hung."""
UPSTREAM_STATUSES = frozenset({500, 502, 503, 504})
"""What an upstream fault (or a limits backend being down) may legitimately give a good request."""


@dataclass
class Call:
    client: int
    op: str
    key: str
    replica: int
    started: float
    ended: float = 0.0
    answered: float = 0.0
    """When the response's status line and headers arrived (0: never)."""
    status: int | None = None
    request_id: str | None = None
    result: str = ""
    """completed | http_error | stream_error | refused (connect) | interrupted | timeout"""
    code: str | None = None


@dataclass
class Ledger:
    calls: list[Call] = field(default_factory=list)
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    """scope → token → value, every token a client was given."""
    problems: list[str] = field(default_factory=list)

    def keep_tokens(self, scope: str, mapping: Any, where: str) -> None:
        if not isinstance(mapping, dict) or not mapping:
            self.problems.append(f"{where}: no mapping in the answer")
            return
        known = self.tokens.setdefault(scope, {})
        for token, value in mapping.items():
            if known.setdefault(token, value) != value:
                self.problems.append(f"{where}: token {token} of scope {scope} stands for two values")

    def completed(self) -> list[Call]:
        return [call for call in self.calls if call.result == "completed"]

    def summary(self) -> dict[str, Any]:
        by_result = Counter(f"{call.op}:{call.result}:{call.status}" for call in self.calls)
        return {"calls": len(self.calls), "by_result": dict(sorted(by_result.items())),
                "tokens": sum(len(tokens) for tokens in self.tokens.values())}  # fmt: skip


def _error_object(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and isinstance(error.get("message"), str) and "type" in error and "code" in error


class Client:
    """One simulated user: a loop of operations until the deadline."""

    def __init__(self, index: int, http: httpx.AsyncClient, urls: list[str], ledger: Ledger, limited: bool) -> None:
        self.index = index
        self.http = http
        self.urls = urls
        self.ledger = ledger
        self.limited = limited
        self.key = "sk-load-limited" if limited else "sk-load"
        self.scope = f"load-scope-{index // 10}"  # ten clients a scope, on both replicas at once
        self.random = random.Random(index)
        self.turn = 0

    def text(self) -> str:
        rng = self.random
        return (f"Bonjour, écrivez à client{self.index}.n{self.turn}@exemple.qc.ca ou appelez le "
                f"+1 514 {rng.randint(200, 999)} {rng.randint(1000, 9999)}.")  # fmt: skip

    async def run(self, deadline: float) -> None:
        operations = (*("chat", "anonymize", "stream") * 3, "bad")
        while time.monotonic() < deadline:
            self.turn += 1
            replica = (self.index + self.turn) % len(self.urls)
            if self.limited:
                call = await self.chat(replica, stream=self.turn % 3 == 0)
                if call.status in (429, 503):  # refused: a pause before the next try
                    await asyncio.sleep(self.random.uniform(0.1, 0.3))
                continue
            operation = operations[(self.index + self.turn) % len(operations)]
            if operation == "bad":
                await self.bad(replica)
            elif operation == "anonymize":
                await self.anonymize(replica)
            else:
                await self.chat(replica, stream=operation == "stream")

    # -- one HTTP request, failing over when a replica refuses connections --------------------

    async def _send(
        self, op: str, replica: int, method: str, path: str, *, key: str | None = None, body: Any = None,
        content: bytes | None = None,
    ) -> tuple[Call, httpx.Response | None, Any]:  # fmt: skip
        """(call, response, parsed body). Streams are read here too (the body is then the list of events)."""
        for attempt in range(len(self.urls)):
            target = (replica + attempt) % len(self.urls)
            call = Call(self.index, op, key or self.key, target, time.monotonic())
            self.ledger.calls.append(call)
            headers = {"Authorization": f"Bearer {key or self.key}"}
            try:
                async with asyncio.timeout(CLIENT_TIMEOUT):
                    response, parsed = await self._exchange(call, method, path, target=target, headers=headers,
                                                            body=body, content=content)  # fmt: skip
            except httpx.ConnectError:
                call.ended, call.result = time.monotonic(), "refused"
                continue
            except (httpx.TimeoutException, TimeoutError) as exc:
                call.ended, call.result = time.monotonic(), "timeout"
                self.ledger.problems.append(f"{op} on replica {target}: no answer within {CLIENT_TIMEOUT} s "
                                            f"({type(exc).__name__})")  # fmt: skip
                return call, None, None
            except httpx.TransportError:
                call.ended, call.result = time.monotonic(), "interrupted"
                return call, None, None
            call.ended = time.monotonic()
            if response.status_code != 200:
                call.result = "http_error"
                if not _error_object(parsed):
                    self.ledger.problems.append(f"{op}: status {response.status_code} without an OpenAI error object")
                else:
                    call.code = parsed["error"].get("code")
            return call, response, parsed
        return call, None, None

    async def _exchange(
        self, call: Call, method: str, path: str, *, target: int, headers: dict[str, str], body: Any,
        content: bytes | None,
    ) -> tuple[httpx.Response, Any]:  # fmt: skip
        """One request and its whole answer (a stream's `data:` lines, else the parsed JSON body)."""
        streaming = isinstance(body, dict) and body.get("stream")
        request = self.http.build_request(method, f"{self.urls[target]}{path}", headers=headers,
                                          json=body if content is None else None, content=content)  # fmt: skip
        response = await self.http.send(request, stream=True)
        call.answered = time.monotonic()
        try:
            call.status = response.status_code
            call.request_id = response.headers.get("x-request-id")
            if streaming and response.status_code == 200:
                parsed: Any = [line async for line in response.aiter_lines() if line.startswith("data: ")]
            else:
                await response.aread()
                try:
                    parsed = response.json()
                except ValueError:
                    parsed = None
        finally:
            await response.aclose()
        return response, parsed

    def _check_status(self, call: Call, *, client_error: bool = False) -> None:
        """A good request may fail only by an upstream fault, a limit, or a limits backend down."""
        if call.status is None or call.status == 200:
            return
        if client_error:
            if not 400 <= call.status < 500:
                self.ledger.problems.append(f"{call.op}: a client mistake answered {call.status} ({call.code})")
            return
        if call.status == 429 and self.limited:
            if call.request_id is not None:
                self.ledger.problems.append("a refused request carries an x-request-id")
            return
        if call.status not in UPSTREAM_STATUSES:
            self.ledger.problems.append(f"{call.op}: a good request answered {call.status} ({call.code})")

    # -- operations ------------------------------------------------------------------------------

    async def chat(self, replica: int, *, stream: bool) -> Call:
        text = self.text()
        body = {"model": "model-a", "messages": [{"role": "user", "content": text}], "veil_scope": self.scope,
                "stream": stream}  # fmt: skip
        call, response, parsed = await self._send("stream" if stream else "chat", replica, "POST",
                                                  "/v1/chat/completions", body=body)  # fmt: skip
        self._check_status(call)
        if call.status != 200 or response is None:
            return call
        where = f"{call.op} {call.request_id}"
        if not stream:
            answer = parsed["choices"][0]["message"]["content"]
            if answer != text:
                self.ledger.problems.append(f"{where}: the restored answer differs from the text sent")
            if not self.limited:
                self.ledger.keep_tokens(self.scope, parsed.get("veil", {}).get("mapping"), where)
            call.result = "completed"
            return call
        pieces, veil, done = [], None, False
        for line in parsed:
            data = line[6:]
            if data == "[DONE]":
                done = True
                break
            event = json.loads(data)
            if "error" in event:
                call.result, call.code = "stream_error", (event["error"] or {}).get("code")
                if not _error_object(event):
                    self.ledger.problems.append(f"{where}: an error event that is not an OpenAI error object")
                return call
            for choice in event.get("choices") or ():
                pieces.append((choice.get("delta") or {}).get("content") or "")
            veil = event.get("veil", veil)
        if not done:
            self.ledger.problems.append(f"{where}: a stream ended with neither [DONE] nor an error event")
            call.result = "stream_error"
            return call
        if "".join(pieces) != text:
            self.ledger.problems.append(f"{where}: the restored stream differs from the text sent")
        if not self.limited:
            self.ledger.keep_tokens(self.scope, (veil or {}).get("mapping"), where)
        call.result = "completed"
        return call

    async def anonymize(self, replica: int) -> None:
        text = self.text()
        call, response, parsed = await self._send("anonymize", replica, "POST", "/v1/anonymize",
                                                  body={"text": text, "scope": self.scope})  # fmt: skip
        self._check_status(call)
        if call.status != 200 or response is None:
            return
        call.result = "completed"
        self.ledger.keep_tokens(self.scope, parsed.get("mapping"), f"anonymize {call.request_id}")
        other = (call.replica + 1) % len(self.urls)
        restoring = {"text": parsed["anonymized_text"], "scope": self.scope}
        restore, response, parsed = await self._send("restore", other, "PUT", "/v1/anonymize", body=restoring)
        self._check_status(restore)
        if restore.status != 200 or response is None:
            return
        restore.result = "completed"
        if parsed.get("text") != text:
            self.ledger.problems.append(f"restore {restore.request_id}: the text differs from the original")

    async def bad(self, replica: int) -> None:
        kind = self.turn // 10 % 5
        if kind == 0:
            call, *_ = await self._send("bad", replica, "POST", "/v1/chat/completions", content=b'{"model": "mod')
        elif kind == 1:
            unknown = {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}
            call, *_ = await self._send("bad", replica, "POST", "/v1/chat/completions", body=unknown)
        elif kind == 2:
            call, *_ = await self._send("bad", replica, "POST", "/v1/chat/completions", body={"model": "model-a"})
        elif kind == 3:
            call, *_ = await self._send("bad", replica, "PUT", "/v1/anonymize", body={"text": "{{EMAIL_1}}"})
        else:
            call, *_ = await self._send("bad", replica, "POST", "/v1/anonymize", key="sk-wrong", body={"text": "x"})
        if call.status is not None:
            call.result = "completed" if call.status == 200 else "client_error"
            self._check_status(call, client_error=True)


async def restore_every_token(http: httpx.AsyncClient, urls: list[str], ledger: Ledger) -> tuple[int, list[str]]:
    """Restore each recorded token on every replica, by scope, 100 at a time. Returns (tokens
    checked, what did not restore)."""
    lost: list[str] = []
    semaphore = asyncio.Semaphore(8)

    async def check(url: str, scope: str, batch: list[tuple[str, str]]) -> None:
        text = "\n".join(token for token, _ in batch)
        async with semaphore:
            for attempt in range(3):  # a keep-alive connection the server closed as it was reused
                try:
                    answer = await http.put(f"{url}/v1/anonymize", json={"text": text, "scope": scope},
                                            headers={"Authorization": "Bearer sk-load"})  # fmt: skip
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
        if answer.status_code != 200:
            lost.append(f"{url} {scope}: status {answer.status_code}")
            return
        for (token, value), restored in zip(batch, answer.json()["text"].split("\n"), strict=True):
            if restored != value:
                lost.append(f"{url} {scope} {token}")

    checks = []
    for scope, tokens in ledger.tokens.items():
        items = sorted(tokens.items())
        for start in range(0, len(items), 100):
            checks += [check(url, scope, items[start : start + 100]) for url in urls]
    await asyncio.gather(*checks)
    return sum(len(tokens) for tokens in ledger.tokens.values()), lost
