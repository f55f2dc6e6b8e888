"""The stream relay (veil_server.stream.relay) on its own: an upstream stream of chat chunks in, the
client's SSE bytes out; here, which chunks go out in one write, when the relay gives up the CPU to
let the client read its first chunk, and the response that carries the stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from veil_server.conversation import Turn
from veil_server.metrics import Metrics
from veil_server.stream import EventStreamResponse, relay

from veil.detect.engine import Engine
from veil.detect.policy import Policy
from veil.session import Veil


class ScriptedUpstream:
    """An upstream stream that yields the given reads (lists of events that arrived together), then `[DONE]`."""

    def __init__(self, reads: list[list[dict[str, Any]]]) -> None:
        self._reads = reads
        self.done = False
        self.more = False

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        for read in self._reads:
            for index, event in enumerate(read):
                self.more = index + 1 < len(read)
                yield json.loads(json.dumps(event))
        self.more = False
        self.done = True

    async def aclose(self) -> None:
        return None


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}  # fmt: skip


def turn_with_email() -> tuple[Turn, str]:
    """A turn whose request sent one e-mail address; returns it and the token the model saw."""
    session = Veil(engine=Engine(Policy.from_mapping({"ner": "off"}))).session("relay-test")
    turn = Turn(session, named_scope=False, show_mapping=False)
    turn.anonymize_chat({"messages": [{"role": "user", "content": "Write to jeanne.roy@exemple.ca please"}]})
    (token,) = session.sent_tokens
    return turn, token


def shown(event: dict[str, Any]) -> str:
    """A chunk as the client sees it: its content, or its delta when it has no content."""
    if "error" in event:
        return "(error)"
    if not event["choices"]:
        return "(no choice)"
    delta = event["choices"][0]["delta"]
    return str(delta["content"]) if "content" in delta else json.dumps(delta, sort_keys=True)


async def client_writes(reads: list[list[dict[str, Any]]], turn: Turn | None = None) -> list[Any]:
    """What the client receives, write by write (each a list of chunks), with "hand over" where the
    relay gave up the CPU."""
    seen: list[Any] = []
    stream = relay(ScriptedUpstream(reads), turn, kind="chat", metrics=Metrics(), endpoint="/v1/chat/completions",
                   hand_over=lambda: seen.append("hand over"))  # fmt: skip
    async for data in stream:
        events = [part.removeprefix("data: ") for part in data.decode().split("\n\n") if part]
        seen.append([e if e == "[DONE]" else shown(json.loads(e)) for e in events])
    return seen


ROLE = chunk({"role": "assistant", "content": ""})
STOP = chunk({}, finish="stop")


@pytest.mark.anyio
async def test_chunks_that_arrive_one_by_one_are_written_one_by_one() -> None:
    reads = [[ROLE], [chunk({"content": "Bonj"})], [chunk({"content": "our"})], [STOP]]
    assert await client_writes(reads) == [[""], ["Bonj"], "hand over", ["our"], ["{}"], ["[DONE]"]]


@pytest.mark.anyio
async def test_a_burst_goes_out_in_one_write_but_the_first_text_goes_out_at_once() -> None:
    burst = [ROLE, chunk({"content": "Bonj"}), chunk({"content": "our"}), chunk({"content": " le"})]
    reads = [burst, [chunk({"content": " monde"}), chunk({"content": "!"})], [STOP]]
    assert await client_writes(reads) == [
        ["", "Bonj"], "hand over", ["our", " le"], [" monde", "!"], ["{}"], ["[DONE]"],
    ]  # fmt: skip


@pytest.mark.anyio
async def test_a_finishing_chunk_held_for_the_veil_block_does_not_hold_back_the_chunks_before_it() -> None:
    usage = {**chunk({}), "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    reads = [[ROLE, chunk({"content": "Oui"}), chunk({"content": "."}), STOP], [usage]]
    # The finishing chunk waits for the next event (the veil block may ride on it), not the "." before it.
    assert await client_writes(reads) == [["", "Oui"], "hand over", ["."], ["{}"], ["(no choice)"], ["[DONE]"]]


@pytest.mark.anyio
async def test_a_token_the_restorer_holds_back_is_not_the_first_text_the_client_sees() -> None:
    turn, token = turn_with_email()
    cut = len(token) // 2
    reads = [[ROLE], [chunk({"content": token[:cut]})], [chunk({"content": token[cut:] + " is"})],
             [chunk({"content": " her address"})], [STOP]]  # fmt: skip
    assert await client_writes(reads, turn) == [
        [""], [""], ["jeanne.roy@exemple.ca is"], "hand over", [" her address"], ["{}"], ["[DONE]"],
    ]  # fmt: skip


@pytest.mark.anyio
async def test_a_tool_call_counts_as_text_for_the_hand_over() -> None:
    head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "send", "arguments": ""}}
    reads = [[chunk({"role": "assistant", "content": None, "tool_calls": [head]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"to":'}}]})],
             [chunk({}, finish="tool_calls")]]  # fmt: skip
    seen = await client_writes(reads)
    assert seen[1] == "hand over"  # right after the role chunk that already names the call
    assert seen.count("hand over") == 1


@pytest.mark.anyio
async def test_a_stream_that_carries_no_text_never_hands_over() -> None:
    assert await client_writes([[ROLE, STOP]]) == [[""], ["{}"], ["[DONE]"]]


@pytest.mark.anyio
async def test_an_upstream_error_in_a_burst_follows_the_chunks_before_it_in_the_same_write() -> None:
    error = {"error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}}
    reads = [[ROLE, chunk({"content": "Bonj"}), chunk({"content": "our"}), error]]
    seen = await client_writes(reads)  # the error event has no choices: shown as such
    assert seen == [["", "Bonj"], "hand over", ["our", "(error)"]]


async def _body(trace: list[str]) -> AsyncIterator[bytes]:
    trace.append("relayed by the caller's task" if trace[0] == id(asyncio.current_task()) else "another task")
    try:
        yield b"data: first\n\n"
        await asyncio.sleep(3600)  # an upstream that goes quiet
        yield b"data: never\n\n"
    finally:
        trace.append("body closed")


@pytest.mark.anyio
async def test_the_event_stream_is_relayed_by_the_requests_own_task_and_stops_when_the_client_leaves() -> None:
    trace: list[Any] = [id(asyncio.current_task())]
    sent: list[bytes] = []
    left = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent.append(message.get("body", b""))
            left.set()  # the client leaves once it has the first chunk

    response = EventStreamResponse(_body(trace), media_type="text/event-stream")
    with anyio.fail_after(10):  # a guard against a hang, not a timing: the body would sleep for an hour
        await response({"type": "http", "asgi": {"spec_version": "2.3"}}, receive, send)
    assert trace[1:] == ["relayed by the caller's task", "body closed"]
    assert sent == [b"data: first\n\n"]
