"""The stream relay (veil_server.stream.relay) on its own: an upstream stream of chat chunks in, the
client's SSE bytes out; here, when the relay gives up the CPU to let the client read its first chunk."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from veil_server.conversation import Turn
from veil_server.metrics import Metrics
from veil_server.stream import relay

from veil.detect.engine import Engine
from veil.detect.policy import Policy
from veil.session import Veil


class ScriptedUpstream:
    """An upstream stream that yields the given events, then `[DONE]`."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self._events = events
        self.done = False

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        for event in self._events:
            yield json.loads(json.dumps(event))
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


async def client_view(events: list[dict[str, Any]], turn: Turn | None) -> list[str]:
    """What the client reads, with `hand over` marking where the relay gave up the CPU."""
    seen: list[str] = []
    stream = relay(ScriptedUpstream(events), turn, kind="chat", metrics=Metrics(), endpoint="/v1/chat/completions",
                   hand_over=lambda: seen.append("hand over"))  # fmt: skip
    async for data in stream:
        text = data.decode().removeprefix("data: ").strip()
        if text == "[DONE]":
            seen.append("[DONE]")
            continue
        delta = json.loads(text)["choices"][0]["delta"] if json.loads(text)["choices"] else {}
        seen.append(delta.get("content") if "content" in delta else json.dumps(delta, sort_keys=True))
    return seen


@pytest.mark.anyio
async def test_the_relay_hands_over_once_right_after_the_first_chunk_with_text() -> None:
    events = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Bonj"}), chunk({"content": "our"}),
              chunk({}, finish="stop")]  # fmt: skip
    seen = await client_view(events, None)
    assert seen == ["", "Bonj", "hand over", "our", "{}", "[DONE]"]


@pytest.mark.anyio
async def test_a_token_the_restorer_holds_back_is_not_the_first_text_the_client_sees() -> None:
    turn, token = turn_with_email()
    cut = len(token) // 2
    events = [chunk({"role": "assistant", "content": ""}), chunk({"content": token[:cut]}),
              chunk({"content": token[cut:] + " is"}), chunk({"content": " her address"}),
              chunk({}, finish="stop")]  # fmt: skip
    seen = await client_view(events, turn)
    assert seen == ["", "", "jeanne.roy@exemple.ca is", "hand over", " her address", "{}", "[DONE]"]


@pytest.mark.anyio
async def test_a_tool_call_counts_as_text_for_the_hand_over() -> None:
    head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "send", "arguments": ""}}
    events = [chunk({"role": "assistant", "content": None, "tool_calls": [head]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"to":'}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]}),
              chunk({}, finish="tool_calls")]  # fmt: skip
    seen = await client_view(events, None)
    assert seen.index("hand over") == 1  # right after the role chunk that already names the call
    assert seen.count("hand over") == 1


@pytest.mark.anyio
async def test_a_stream_that_carries_no_text_never_hands_over() -> None:
    seen = await client_view([chunk({"role": "assistant", "content": ""}), chunk({}, finish="stop")], None)
    assert seen == ["", "{}", "[DONE]"]
