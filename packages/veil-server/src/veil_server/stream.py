"""Relay an upstream SSE stream to the client, restoring it on the fly.

Each piece of the answer has its own streaming restorer: a chat choice's `content` (and
`refusal`), each tool call's `arguments` (JSON-string escaping), a completion choice's `text`.
Restorers hold back only what could still be the start of a token, so the stream is never
buffered whole, and no token is ever shown half-restored. What a restorer still holds when a
choice finishes goes into that finishing chunk's delta; what it holds when the stream ends goes
into one extra chunk. The `veil` block (counts, types, drift) rides on the last chunk before
`data: [DONE]` (the usage chunk when `stream_options.include_usage` asked for one); to place it,
only chunks that finish a choice, or carry no choice, are held until the next event.

Errors once the stream has started cannot change the status: they are sent as an SSE event
`{"error": {...}}`, which the OpenAI SDKs raise as `APIError`, and the stream ends there.
If the client goes away, the upstream request is closed (cancelled) at once. A stream's usage row
is committed before its `data: [DONE]` goes out (see veil_server.meter).

Chunks are written as they come, except that the events of one upstream read (a burst) go out
in one write: the relay never waits for an event that has not arrived yet, and a burst of 250
chunks costs a few writes instead of 250 (each one an ASGI message, a system call and a wake-up
of the client). The first chunk that carries text goes out at once, without the rest of its read.

Once the first chunk that carries text has been written, the relay gives up the CPU once
(`os.sched_yield`, a few microseconds). An upstream that sends its answer in a burst keeps the
gateway busy relaying the rest of it; a client on the same host, woken by that first chunk, is
queued on the gateway's core (the kernel places a task woken by a socket write beside the
writer) and, with no idle core, waited for the gateway's time slice to end (about 2 ms on the
2-core benchmark machine) before it could read its first token.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Literal

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from veil.errors import VeilError
from veil.restore import StreamingRestorer
from veil_server.conversation import Turn, not_anonymized_block
from veil_server.errors import ApiError, from_veil_error
from veil_server.jsonio import dumps
from veil_server.metrics import Metrics
from veil_server.upstream import UpstreamStream

if TYPE_CHECKING:
    from veil_server.meter import Ticket

Kind = Literal["chat", "completion"]
_TEXT_KEYS = ("content", "refusal", "reasoning_content")


class EventStreamResponse(StreamingResponse):
    """A StreamingResponse whose body is relayed by the request's own task, the client's
    disconnection being watched by a second one (Starlette does the reverse): the first chunk
    then goes out without waiting for a turn of the event loop, in which the rest of an upstream
    burst would be read first. Leaving still cancels the relay (and so the upstream request)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._relay(receive, send)
        except BaseExceptionGroup as group:  # one failure: raise it as itself, as Starlette does
            if len(group.exceptions) != 1:
                raise
            raise group.exceptions[0] from None
        if self.background is not None:
            await self.background()

    async def _relay(self, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()

            group.start_soon(watch)
            await self.stream_response(send)
            group.cancel_scope.cancel()


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + dumps(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"


class ChunkRestorer:
    """Restores the chunks of one stream in place; see the module docstring."""

    def __init__(self, turn: Turn, kind: Kind) -> None:
        self.turn = turn
        self.kind = kind
        self._text: dict[tuple[int, str], StreamingRestorer] = {}
        self._args: dict[tuple[int, int], StreamingRestorer] = {}
        self.finished: set[int] = set()

    def _text_restorer(self, choice: int, key: str) -> StreamingRestorer:
        restorer = self._text.get((choice, key))
        if restorer is None:
            restorer = self._text[(choice, key)] = self.turn.restorer()
        return restorer

    def _args_restorer(self, choice: int, call: int) -> StreamingRestorer:
        restorer = self._args.get((choice, call))
        if restorer is None:
            restorer = self._args[(choice, call)] = self.turn.restorer(json_string=True)
        return restorer

    def restore(self, event: dict[str, Any]) -> None:
        for choice in event.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            if self.kind == "completion":
                if isinstance(choice.get("text"), str) and choice["text"]:
                    choice["text"] = self._text_restorer(index, "text").feed(choice["text"])
            else:
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    self._restore_delta(index, delta)
            if choice.get("finish_reason") is not None:
                self._flush_into(index, choice)

    def _restore_delta(self, index: int, delta: dict[str, Any]) -> None:
        for key in _TEXT_KEYS:
            if isinstance(delta.get(key), str) and delta[key]:
                delta[key] = self._text_restorer(index, key).feed(delta[key])
        for call in delta.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str) and function["arguments"]:
                function["arguments"] = self._args_restorer(index, call.get("index", 0)).feed(function["arguments"])
        function = delta.get("function_call")
        if isinstance(function, dict) and isinstance(function.get("arguments"), str) and function["arguments"]:
            function["arguments"] = self._args_restorer(index, -1).feed(function["arguments"])

    def _flush_into(self, index: int, choice: dict[str, Any]) -> None:
        """Put what the choice's restorers hold into its (finishing) chunk."""
        self.finished.add(index)
        for (choice_index, key), restorer in self._text.items():
            if choice_index != index:
                continue
            rest = restorer.flush()
            if not rest:
                continue
            if self.kind == "completion":
                choice["text"] = (choice.get("text") or "") + rest
            else:
                delta = choice.setdefault("delta", {})
                delta[key] = (delta.get(key) or "") + rest
        for (choice_index, call_index), restorer in self._args.items():
            if choice_index != index:
                continue
            rest = restorer.flush()
            if rest:
                _append_arguments(choice.setdefault("delta", {}), call_index, rest)

    def tail(self, template: dict[str, Any]) -> dict[str, Any] | None:
        """A chunk with what the restorers of unfinished choices still hold (None if nothing)."""
        choices: dict[int, dict[str, Any]] = {}
        for (index, key), restorer in self._text.items():
            rest = restorer.flush()
            if rest and index not in self.finished:
                choice = choices.setdefault(index, self._empty_choice(index))
                if self.kind == "completion":
                    choice["text"] += rest
                else:
                    choice["delta"][key] = choice["delta"].get(key, "") + rest
        for (index, call_index), restorer in self._args.items():
            rest = restorer.flush()
            if rest and index not in self.finished:
                choice = choices.setdefault(index, self._empty_choice(index))
                _append_arguments(choice["delta"], call_index, rest)
        if not choices:
            return None
        return {**_envelope(template), "choices": [choices[i] for i in sorted(choices)]}

    def _empty_choice(self, index: int) -> dict[str, Any]:
        if self.kind == "completion":
            return {"index": index, "text": "", "logprobs": None, "finish_reason": None}
        return {"index": index, "delta": {}, "logprobs": None, "finish_reason": None}


def _append_arguments(delta: dict[str, Any], call_index: int, rest: str) -> None:
    if call_index < 0:
        function = delta.setdefault("function_call", {})
        function["arguments"] = (function.get("arguments") or "") + rest
        return
    calls = delta.setdefault("tool_calls", [])
    for call in calls:
        if isinstance(call, dict) and call.get("index", 0) == call_index:
            function = call.setdefault("function", {})
            function["arguments"] = (function.get("arguments") or "") + rest
            return
    calls.append({"index": call_index, "function": {"arguments": rest}})


def _envelope(template: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "object", "created", "model", "system_fingerprint")
    return {key: template[key] for key in keys if key in template}


def _carries_text(event: dict[str, Any]) -> bool:
    """Whether a (restored) chunk shows the client some of the answer: text, or tool-call arguments."""
    for choice in event.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if choice.get("text"):
            return True
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            continue
        if any(delta.get(key) for key in _TEXT_KEYS) or delta.get("tool_calls") or delta.get("function_call"):
            return True
    return False


def _yield_cpu() -> None:
    if hasattr(os, "sched_yield"):  # not on Windows
        os.sched_yield()


def _take(ready: list[bytes]) -> bytes:
    data = b"".join(ready)
    ready.clear()
    return data


def _terminal(event: dict[str, Any]) -> bool:
    choices = event.get("choices")
    if not choices:
        return True
    return any(isinstance(c, dict) and c.get("finish_reason") is not None for c in choices)


async def relay(
    upstream: UpstreamStream,
    turn: Turn | None,
    *,
    kind: Kind,
    metrics: Metrics,
    endpoint: str,
    ticket: Ticket | None = None,
    hand_over: Callable[[], None] = _yield_cpu,
) -> AsyncIterator[bytes]:
    """The client's SSE stream: upstream events restored, the veil block on the last one, then [DONE].
    `ticket` sees every event (usage) and the end of the stream, however it ends (accounting).
    `hand_over` runs once, after the first chunk that carries text has been sent (see the module docstring)."""
    restorer = ChunkRestorer(turn, kind) if turn is not None else None
    handed_over = False
    held: list[dict[str, Any]] = []
    ready: list[bytes] = []  # chunks for the client, written together once nothing more has arrived
    template: dict[str, Any] = {"object": "chat.completion.chunk" if kind == "chat" else "text_completion"}
    outcome = "completed"
    try:
        async for event in upstream.events():
            if event.get("error") and not event.get("choices"):
                outcome = "upstream_error"
                ready.append(sse({"error": event["error"]} if isinstance(event["error"], dict) else
                                 {"error": {"message": str(event["error"]), "type": "server_error", "param": None,
                                            "code": "upstream_error"}}))  # fmt: skip
                yield _take(ready)
                return
            first_text = False
            if ticket is None or ticket.observe(event):
                ready.extend(sse(waiting) for waiting in held)
                held.clear()
                template = event
                if restorer is not None:
                    restorer.restore(event)
                if _terminal(event):
                    held.append(event)
                else:
                    ready.append(sse(event))
                    first_text = not handed_over and _carries_text(event)
            if ready and (first_text or not upstream.more):
                yield _take(ready)
            if first_text:
                handed_over = True
                hand_over()
        if not upstream.done and (restorer is None or not restorer.finished) and not held:
            outcome = "upstream_truncated"
            ready.append(
                sse(ApiError(502, "the upstream stream ended before its end", code="upstream_truncated").body())
            )
            yield _take(ready)
            return
        if restorer is not None:
            tail = restorer.tail(template)
            if tail is not None:
                held.insert(0, tail)
        block = turn.block() if turn is not None else not_anonymized_block()
        if turn is not None:
            drift = block["drift"]
            for kind_name in ("dropped", "altered", "invented"):
                if drift[kind_name]:
                    metrics.drift.labels(kind_name).inc(len(drift[kind_name]))
        if held:
            held[-1]["veil"] = block
        else:
            held.append({**_envelope(template), "choices": [], "veil": block})
        ready.extend(sse(waiting) for waiting in held)
        yield _take(ready)
        if ticket is not None:
            await ticket.end_stream(outcome)  # the usage row is stored before the client sees the end
        yield DONE
    except ApiError as exc:
        outcome = "error"
        ready.append(sse(exc.body()))
        yield _take(ready)
    except VeilError as exc:
        outcome = "error"
        ready.append(sse(from_veil_error(exc).body()))
        yield _take(ready)
    except anyio.get_cancelled_exc_class():
        outcome = "cancelled"
        raise
    except GeneratorExit:
        outcome = "cancelled"
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await upstream.aclose()
            if ticket is not None:
                await ticket.end_stream(outcome)
        metrics.streams.labels(endpoint, outcome).inc()
