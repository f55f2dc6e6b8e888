"""VeilChatGenerator: the wrapped model sees tokens only; replies, tool calls and streams come back restored."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from haystack import Pipeline
from haystack.components.agents import Agent
from haystack.components.generators.chat import MockChatGenerator
from haystack.dataclasses import ChatMessage, StreamingChunk, ToolCall, ToolCallDelta
from haystack.tools import Tool
from haystack_fakes import RecordingChatGenerator
from haystack_helpers import CARD, EMAIL, PHONE, SIN, assert_no_canary
from veil_haystack import VeilChatGenerator, VeilConfig

import veil

TEXT = f"Bonjour, écrivez à {EMAIL} ou appelez le {PHONE}. NAS {SIN}, carte {CARD}."
# Pieces of a token, or braces: what a half-restored token would show.
HALF_TOKEN = re.compile(r"\{|\}|EMAIL_|PHONE_|CA_SIN_|CREDIT_CARD_")
# In JSON arguments single braces are the object's own.
HALF_TOKEN_IN_JSON = re.compile(r"\{\{|\}\}|EMAIL_|PHONE_|CA_SIN_|CREDIT_CARD_")


def streamed_text(chunks: list[StreamingChunk]) -> str:
    return "".join(chunk.content for chunk in chunks)


def streamed_arguments(chunks: list[StreamingChunk]) -> dict[int, str]:
    out: dict[int, str] = {}
    for chunk in chunks:
        for delta in chunk.tool_calls or []:
            out[delta.index] = out.get(delta.index, "") + (delta.arguments or "")
    return out


def test_model_never_sees_a_value_and_the_reply_comes_back_restored(config: VeilConfig) -> None:
    model = RecordingChatGenerator()
    llm = VeilChatGenerator(generator=model, config=config)
    replies = llm.run([ChatMessage.from_system("Service client."), ChatMessage.from_user(TEXT)])["replies"]
    assert_no_canary(model.seen)
    assert "{{EMAIL_1}}" in model.seen[-1]
    assert replies[0].text == f"Reçu : {TEXT}"


def test_a_plain_string_is_taken_as_a_user_message(config: VeilConfig) -> None:
    model = RecordingChatGenerator()
    replies = VeilChatGenerator(generator=model, config=config).run(TEXT)["replies"]
    assert_no_canary(model.seen)
    assert replies[0].text == f"Reçu : {TEXT}"


def test_tool_call_arguments_are_restored_and_tool_results_anonymized(config: VeilConfig) -> None:
    model = RecordingChatGenerator(script="tool")
    llm = VeilChatGenerator(generator=model, config=config, scope="conversation-7")
    first = llm.run([ChatMessage.from_user(f"Écris à {EMAIL}, NAS {SIN}")])["replies"][0]
    call = first.tool_calls[0]
    assert call.arguments == {"recipients": [EMAIL, SIN], "note": f"Écrire à {EMAIL}"}
    history = [
        ChatMessage.from_user(f"Écris à {EMAIL}, NAS {SIN}"),
        first,
        ChatMessage.from_tool(f"courriel envoyé à {EMAIL}", origin=call),
    ]
    second = llm.run(history)["replies"][0]
    assert second.text == f"Fait : courriel envoyé à {EMAIL}"
    assert_no_canary(model.seen)


def test_a_conversation_scope_keeps_tokens_stable_across_turns(config: VeilConfig) -> None:
    model = RecordingChatGenerator()
    llm = VeilChatGenerator(generator=model, config=config, scope="conversation-8")
    llm.run([ChatMessage.from_user(f"à {EMAIL}")])
    llm.run([ChatMessage.from_user(f"NAS {SIN}, toujours {EMAIL}")])
    assert model.seen == ["à {{EMAIL_1}}", "NAS {{CA_SIN_1}}, toujours {{EMAIL_1}}"]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 8, 13])
def test_token_split_across_chunks_is_never_emitted_half_restored(config: VeilConfig, chunk_size: int) -> None:
    chunks: list[StreamingChunk] = []
    model = RecordingChatGenerator(chunk_size=chunk_size)
    replies = VeilChatGenerator(generator=model, config=config).run(TEXT, streaming_callback=chunks.append)["replies"]
    for chunk in chunks:
        assert not HALF_TOKEN.search(chunk.content), chunk.content
    assert streamed_text(chunks) == replies[0].text == f"Reçu : {TEXT}"
    assert chunks[-1].finish_reason == "stop"
    assert_no_canary(model.seen)


@pytest.mark.parametrize("chunk_size", [1, 4, 7])
def test_streamed_tool_call_arguments_are_restored_as_json(config: VeilConfig, chunk_size: int) -> None:
    chunks: list[StreamingChunk] = []
    model = RecordingChatGenerator(script="tool", chunk_size=chunk_size)
    llm = VeilChatGenerator(generator=model, config=config, streaming_callback=chunks.append)
    reply = llm.run([ChatMessage.from_user(f'Écris à {EMAIL} "urgent", NAS {SIN}')])["replies"][0]
    arguments = streamed_arguments(chunks)
    assert json.loads(arguments[0]) == reply.tool_calls[0].arguments
    assert reply.tool_calls[0].arguments["recipients"] == [EMAIL, SIN]
    for chunk in chunks:
        for delta in chunk.tool_calls or []:
            assert not HALF_TOKEN_IN_JSON.search(delta.arguments or ""), delta.arguments
    assert chunks[-1].finish_reason == "tool_calls"


def test_streaming_with_haystacks_mock_generator_restores_every_chunk(config: VeilConfig) -> None:
    chunks: list[StreamingChunk] = []
    mock = MockChatGenerator()  # echoes the last message, word by word
    replies = VeilChatGenerator(generator=mock, config=config).run(TEXT, streaming_callback=chunks.append)["replies"]
    assert streamed_text(chunks) == replies[0].text == TEXT


def test_the_wrapped_generator_is_not_called_when_anonymization_fails(config: VeilConfig) -> None:
    model = RecordingChatGenerator()
    llm = VeilChatGenerator(generator=model, config=config)
    image_message = ChatMessage.from_user(content_parts=[TEXT, _image()])
    with pytest.raises(veil.InputError):
        llm.run([image_message])
    assert model.seen == []


def test_an_option_the_wrapped_generator_does_not_take_is_refused(config: VeilConfig) -> None:
    class NoTools:
        def run(self, messages: list[ChatMessage]) -> dict[str, list[ChatMessage]]:
            raise AssertionError("must not be called")

    with pytest.raises(veil.ConfigError, match="tools"):
        VeilChatGenerator(generator=NoTools(), config=config).run(TEXT, tools=[_tool()])


def test_a_model_inventing_a_token_raises_unless_lenient(config: VeilConfig) -> None:
    inventive = MockChatGenerator(responses="Voir {{PERSON_41}}.")
    with pytest.raises(veil.TokenNotFound):
        VeilChatGenerator(generator=inventive, config=config).run(TEXT)
    lenient = VeilChatGenerator(generator=inventive, config=config, lenient=True).run(TEXT)
    assert lenient["replies"][0].text == "Voir {{PERSON_41}}."


def test_run_async_restores_and_awaits_an_async_callback(config: VeilConfig) -> None:
    chunks: list[StreamingChunk] = []

    async def collect(chunk: StreamingChunk) -> None:
        chunks.append(chunk)

    model = RecordingChatGenerator(chunk_size=2)
    llm = VeilChatGenerator(generator=model, config=config)
    result = asyncio.run(llm.run_async([ChatMessage.from_user(TEXT)], streaming_callback=collect))
    assert result["replies"][0].text == f"Reçu : {TEXT}" == streamed_text(chunks)
    assert_no_canary(model.seen)


def test_run_async_with_a_sync_only_generator_runs_it_in_a_thread(config: VeilConfig) -> None:
    class SyncOnly:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def run(self, messages: list[ChatMessage], streaming_callback: object = None) -> dict[str, list[ChatMessage]]:
            self.seen.append(messages[-1].text or "")
            assert callable(streaming_callback)
            for piece in ("Vu : ", messages[-1].text[:7], messages[-1].text[7:]):  # type: ignore[index]
                streaming_callback(StreamingChunk(content=piece))
            return {"replies": [ChatMessage.from_assistant(f"Vu : {messages[-1].text}")]}

    chunks: list[StreamingChunk] = []

    async def collect(chunk: StreamingChunk) -> None:
        chunks.append(chunk)

    model = SyncOnly()
    llm = VeilChatGenerator(generator=model, config=config)
    result = asyncio.run(llm.run_async(f"{EMAIL} !", streaming_callback=collect))
    assert model.seen == ["{{EMAIL_1}} !"]
    assert streamed_text(chunks) == result["replies"][0].text == f"Vu : {EMAIL} !"


def test_pipeline_run_async_runs_the_wrapper_without_leaking(config: VeilConfig) -> None:
    model = RecordingChatGenerator(chunk_size=4)
    chunks: list[StreamingChunk] = []
    pipeline = Pipeline()
    pipeline.add_component("llm", VeilChatGenerator(generator=model, config=config, streaming_callback=chunks.append))
    result = asyncio.run(pipeline.run_async({"llm": {"messages": [ChatMessage.from_user(TEXT)]}}))
    assert result["llm"]["replies"][0].text == f"Reçu : {TEXT}" == streamed_text(chunks)
    assert_no_canary(model.seen)


def test_pipeline_stream_yields_restored_chunks(config: VeilConfig) -> None:
    model = RecordingChatGenerator(chunk_size=3)
    pipeline = Pipeline()
    pipeline.add_component("llm", VeilChatGenerator(generator=model, config=config))

    async def consume() -> tuple[list[StreamingChunk], dict[str, object]]:
        handle = pipeline.stream({"llm": {"messages": [ChatMessage.from_user(TEXT)]}})
        return [chunk async for chunk in handle], handle.result

    chunks, result = asyncio.run(consume())
    assert streamed_text(chunks) == f"Reçu : {TEXT}"
    assert all(not HALF_TOKEN.search(chunk.content) for chunk in chunks)
    assert result["llm"]["replies"][0].text == f"Reçu : {TEXT}"  # type: ignore[index]
    assert_no_canary(model.seen)


def test_agent_runs_tools_with_real_values_while_the_model_sees_tokens(config: VeilConfig) -> None:
    sent: list[dict[str, object]] = []

    def send_email(recipients: list[str], note: str) -> str:
        sent.append({"recipients": recipients, "note": note})
        return f"envoyé à {', '.join(recipients)}"

    model = RecordingChatGenerator(script="tool")
    tool = _tool(send_email)
    agent = Agent(chat_generator=VeilChatGenerator(generator=model, config=config), tools=[tool])
    pipeline = Pipeline()
    pipeline.add_component("agent", agent)
    result = pipeline.run({"agent": {"messages": [ChatMessage.from_user(f"Écris à {EMAIL}, NAS {SIN}")]}})
    assert sent == [{"recipients": [EMAIL, SIN], "note": f"Écrire à {EMAIL}"}]
    assert result["agent"]["last_message"].text == f"Fait : envoyé à {EMAIL}, {SIN}"
    assert_no_canary(model.seen)


def _tool(function: object = None) -> Tool:
    def send_email(recipients: list[str], note: str) -> str:
        return "ok"

    return Tool(
        name="send_email",
        description="Send an e-mail.",
        parameters={
            "type": "object",
            "properties": {"recipients": {"type": "array", "items": {"type": "string"}}, "note": {"type": "string"}},
            "required": ["recipients", "note"],
        },
        function=function or send_email,  # type: ignore[arg-type]
    )


def _image() -> object:
    from haystack.dataclasses import ImageContent

    return ImageContent(base64_image="iVBORw0KGgo=", mime_type="image/png", validation=False)


def test_tool_call_ids_and_names_are_left_as_they_are(config: VeilConfig) -> None:
    call = ToolCall(tool_name="lookup_marie", arguments={"q": EMAIL}, id="call_marie")
    model = RecordingChatGenerator()
    VeilChatGenerator(generator=model, config=config).run(
        [ChatMessage.from_user("x"), ChatMessage.from_assistant(tool_calls=[call]), ChatMessage.from_tool("ok", call)]
    )
    assert '{"q": "{{EMAIL_1}}"}' in model.seen


def test_a_scope_invented_for_one_run_is_erased_when_the_run_ends(config: VeilConfig) -> None:
    veil_instance = config.veil()
    VeilChatGenerator(generator=RecordingChatGenerator(), config=config).run(TEXT)
    tokenized = [r for r in veil_instance.audit.store.records() if r.tenant == config.tenant and r.event == "tokenize"]
    erased = [r for r in veil_instance.audit.store.records() if r.tenant == config.tenant and r.event == "erase"]
    assert len(tokenized) == 1 and len(erased) == 1
    scope = tokenized[0].details["scope"]
    assert erased[0].details == {"scope": scope, "count": 4}
    assert list(veil_instance.vault.records(config.tenant, scope)) == []


def test_a_given_scope_is_kept_for_the_next_turn(config: VeilConfig) -> None:
    VeilChatGenerator(generator=RecordingChatGenerator(), config=config).run(TEXT, scope="conversation-3")
    assert len(list(config.veil().vault.records(config.tenant, "conversation-3"))) == 4


class ScriptedStream:
    """A model that streams given chunks (the way some providers index them) and replies with their text."""

    def __init__(self, chunks: list[StreamingChunk], reply: ChatMessage) -> None:
        self.chunks, self.reply = chunks, reply

    def run(self, messages: list[ChatMessage], streaming_callback: Any = None) -> dict[str, list[ChatMessage]]:
        for chunk in self.chunks:
            streaming_callback(chunk)
        return {"replies": [self.reply]}


def test_a_token_cut_where_the_text_index_changes_is_still_restored_whole(config: VeilConfig) -> None:
    pieces = [StreamingChunk(content="Écrire à {{EM", index=None), StreamingChunk(content="AIL_1}} !", index=0)]
    shown: list[StreamingChunk] = []
    llm = VeilChatGenerator(generator=ScriptedStream(pieces, ChatMessage.from_assistant("x")), config=config)
    llm.run(f"à {EMAIL}", scope="conversation-index", streaming_callback=shown.append)
    assert [chunk.content for chunk in shown] == ["Écrire à ", f"{EMAIL} !"]


def test_the_held_back_text_is_sent_before_the_tool_call_that_follows_it(config: VeilConfig) -> None:
    call = ToolCall(tool_name="send_email", arguments={"to": "{{EMAIL_1}}"}, id="c1")
    pieces = [
        StreamingChunk(content="Je lui écris : {{EMAIL", index=0),
        StreamingChunk(content="_1}", index=0),  # a token a model mangled: "}" more could still follow
        StreamingChunk(content="", index=1, start=True, tool_calls=[ToolCallDelta(index=0, tool_name="send_email")]),
        StreamingChunk(content="", index=1, tool_calls=[ToolCallDelta(index=0, arguments='{"to": "{{EMAIL_1}}"}')]),
        StreamingChunk(content="", finish_reason="tool_calls"),
    ]
    reply = ChatMessage.from_assistant("Je lui écris : {{EMAIL_1}", tool_calls=[call])
    shown: list[StreamingChunk] = []
    llm = VeilChatGenerator(generator=ScriptedStream(pieces, reply), config=config)
    result = llm.run(f"à {EMAIL}", scope="conversation-blocks", streaming_callback=shown.append)
    text_then_tool = [(chunk.content, [d.arguments for d in chunk.tool_calls or []]) for chunk in shown]
    assert text_then_tool == [
        ("Je lui écris : ", []),
        ("", []),  # "{{EMAIL" + "_1}" held back until the block ends…
        (EMAIL, []),  # …and sent whole, before the tool call starts
        ("", [None]),
        ("", [json.dumps({"to": EMAIL})]),
        ("", []),
    ]
    assert result["replies"][0].tool_calls[0].arguments == {"to": EMAIL}
    assert result["replies"][0].text == f"Je lui écris : {EMAIL}"


def test_options_go_to_a_generator_that_takes_any_keyword(config: VeilConfig) -> None:
    class AnyOptions:
        def __init__(self) -> None:
            self.options: dict[str, Any] = {}

        def run(self, messages: list[ChatMessage], **options: Any) -> dict[str, list[ChatMessage]]:
            self.options = options
            return {"replies": [ChatMessage.from_assistant(messages[-1].text or "")]}

    model = AnyOptions()
    VeilChatGenerator(generator=model, config=config).run(TEXT, generation_kwargs={"temperature": 0}, tools_strict=True)
    assert model.options == {"generation_kwargs": {"temperature": 0}, "tools_strict": True}
