"""VeilChatModel: the wrapped model sees tokens; the caller sees values — invoke, stream, tools, structured output."""

from __future__ import annotations

import asyncio
import json

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableBinding
from langchain_core.tools import tool
from langchain_fakes import RecordingChatModel
from pydantic import BaseModel
from veil_langchain import BinaryContentRefused, VeilChatModel

from veil import DetectionError, Engine, Span, TokenNotFound, Veil
from veil.detect import BUILTIN_RULES, RuleDetector

EMAIL = "marie.tremblay@exemple.qc.ca"
PHONE = "+1 514 872 3456"
SIN = "130 692 544"

RULES = Engine(detectors=[RuleDetector(BUILTIN_RULES)])
"""The rules engine (thread-safe, shared): deterministic whatever NER is installed."""


def wrapped(*script: AIMessage, chunk_size: int = 3, **options: object) -> tuple[VeilChatModel, RecordingChatModel]:
    upstream = RecordingChatModel(script=list(script), chunk_size=chunk_size)
    options.setdefault("veil", Veil(engine=RULES))
    return VeilChatModel(model=upstream, **options), upstream  # type: ignore[arg-type]


def test_invoke_sends_tokens_and_returns_values() -> None:
    llm, upstream = wrapped()
    answer = llm.invoke(f"Écrivez à {EMAIL} ou au {PHONE}")
    assert upstream.received[0][0].content == "Écrivez à {{EMAIL_1}} ou au {{PHONE_1}}"
    assert answer.content == f"You said: Écrivez à {EMAIL} ou au {PHONE}"


def test_every_message_of_the_conversation_is_anonymized_with_one_mapping() -> None:
    llm, upstream = wrapped(scope="conversation-1")
    llm.invoke([SystemMessage(f"Client: {EMAIL}"), AIMessage(f"Noted {EMAIL}"), HumanMessage(f"NAS {SIN}")])
    sent = [m.content for m in upstream.received[0]]
    assert sent == ["Client: {{EMAIL_1}}", "Noted {{EMAIL_1}}", "NAS {{CA_SIN_1}}"]


def test_text_blocks_are_anonymized_and_binary_blocks_refused_unless_allowed() -> None:
    llm, upstream = wrapped()
    llm.invoke([HumanMessage(content=[{"type": "text", "text": f"mail {EMAIL}"}])])
    assert upstream.received[0][0].content == [{"type": "text", "text": "mail {{EMAIL_1}}"}]
    image = {"type": "image", "base64": "iVBORw0KGgo=", "mime_type": "image/png"}
    with pytest.raises(BinaryContentRefused):
        llm.invoke([HumanMessage(content=[{"type": "text", "text": "see"}, image])])
    assert len(upstream.received) == 1
    allowing, upstream = wrapped(allow_binary=True)
    allowing.invoke([HumanMessage(content=[{"type": "text", "text": "see"}, image])])
    assert upstream.received[0][0].content[1] == image


def test_token_split_across_chunks_is_never_emitted_half_restored() -> None:
    for size in (1, 2, 3, 5, 7):
        llm, upstream = wrapped(chunk_size=size)
        chunks = list(llm.stream(f"Écrivez à {EMAIL}, NAS {SIN}"))
        shown = [chunk.text for chunk in chunks]
        assert "".join(shown) == f"You said: Écrivez à {EMAIL}, NAS {SIN}"
        for piece in shown:
            assert "{" not in piece and "}" not in piece and "EMAIL" not in piece
        assert len([piece for piece in shown if piece]) > 3  # really streamed, not gathered
        assert chunks[-1].chunk_position == "last"
        assert "{{EMAIL_1}}" in upstream.received[0][0].content


async def test_astream_restores_like_stream() -> None:
    llm, _ = wrapped(chunk_size=2)
    shown = [chunk.text async for chunk in llm.astream(f"Écrivez à {EMAIL}")]
    assert "".join(shown) == f"You said: Écrivez à {EMAIL}"
    assert all("{" not in piece for piece in shown)


async def test_ainvoke_and_batch_restore_each_answer() -> None:
    llm, upstream = wrapped()
    assert (await llm.ainvoke(f"à {EMAIL}")).content == f"You said: à {EMAIL}"
    answers = llm.batch([f"à {EMAIL}", f"NAS {SIN}"])
    assert [a.content for a in answers] == [f"You said: à {EMAIL}", f"You said: NAS {SIN}"]
    answers = await llm.abatch([f"à {EMAIL}", f"NAS {SIN}"])
    assert [a.content for a in answers] == [f"You said: à {EMAIL}", f"You said: NAS {SIN}"]
    assert EMAIL not in upstream.seen_text() and SIN not in upstream.seen_text()


def test_usage_and_response_metadata_pass_through() -> None:
    llm, _ = wrapped()
    answer = llm.invoke(f"write to {EMAIL}")
    assert answer.usage_metadata == {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8}
    assert answer.response_metadata["model_name"] == "recording-fake-1"
    full = None
    for chunk in llm.stream(f"write to {EMAIL}"):
        full = chunk if full is None else full + chunk
    assert isinstance(full, AIMessageChunk)
    assert full.usage_metadata is not None and full.usage_metadata["total_tokens"] == 8


def test_tool_call_arguments_reach_the_caller_restored_and_tool_results_reach_the_model_anonymized() -> None:
    call = {"name": "send_mail", "args": {"to": "{{EMAIL_1}}", "id": "{{EMAIL_1}}"}, "id": "call-1"}
    llm, upstream = wrapped(AIMessage(content="", tool_calls=[call]), scope="agent-1")

    @tool
    def send_mail(to: str, id: str) -> str:
        """Send a mail."""
        return f"sent to {to}; customer SIN {SIN}"

    bound = llm.bind_tools([send_mail])
    history: list = [HumanMessage(f"Écris à {EMAIL}")]
    request = bound.invoke(history)
    assert request.tool_calls[0]["args"] == {"to": EMAIL, "id": EMAIL}
    result = send_mail.invoke(request.tool_calls[0])
    assert isinstance(result, ToolMessage) and EMAIL in result.content
    history += [request, result]
    final = bound.invoke(history)
    second = upstream.received[1]
    assert second[1].tool_calls[0]["args"] == {"to": "{{EMAIL_1}}", "id": "{{EMAIL_1}}"}
    assert second[2].content == "sent to {{EMAIL_1}}; customer SIN {{CA_SIN_1}}"
    assert final.content == f"You said: sent to {EMAIL}; customer SIN {SIN}"
    assert EMAIL not in upstream.seen_text() and SIN not in upstream.seen_text()


def test_streamed_tool_call_arguments_are_restored_as_valid_json() -> None:
    call = {"name": "lookup", "args": {"email": "{{EMAIL_1}}", "note": 'a "quoted" {{EMAIL_1}}'}, "id": "c1"}
    for size in (1, 3, 4):
        llm, _ = wrapped(AIMessage(content="", tool_calls=[call]), chunk_size=size, scope="s")
        llm.invoke(f"{EMAIL}")  # the scope learns the value
        llm.model.script.append(AIMessage(content="", tool_calls=[call]))  # type: ignore[attr-defined]
        full = None
        for chunk in llm.stream(f"find {EMAIL}"):
            for piece in chunk.tool_call_chunks:
                assert "{{" not in (piece.get("args") or "")
            full = chunk if full is None else full + chunk
        assert isinstance(full, AIMessageChunk)
        assert full.tool_calls[0]["args"] == {"email": EMAIL, "note": f'a "quoted" {EMAIL}'}


def test_bind_tools_is_formatted_by_the_wrapped_model_and_called_through_the_wrapper() -> None:
    llm, upstream = wrapped()

    def lookup(email: str) -> str:
        """Find a customer by e-mail."""
        return email

    bound = llm.bind_tools([lookup], tool_choice="any")
    assert isinstance(bound, RunnableBinding) and bound.bound is llm
    bound.invoke(f"find {EMAIL}")
    kwargs = upstream.received_kwargs[0]
    assert kwargs["tool_choice"] == "any"
    assert kwargs["tools"][0]["function"]["name"] == "lookup"
    assert upstream.received[0][0].content == "find {{EMAIL_1}}"


class Contact(BaseModel):
    """A contact."""

    name: str
    email: str


def test_structured_output_is_restored_and_the_model_never_sees_the_value() -> None:
    call = {"name": "Contact", "args": {"name": "Client", "email": "{{EMAIL_1}}"}, "id": "c1"}
    llm, upstream = wrapped(AIMessage(content="", tool_calls=[call]))
    structured = llm.with_structured_output(Contact)
    contact = structured.invoke(f"Client, {EMAIL}")
    assert contact == Contact(name="Client", email=EMAIL)
    assert upstream.received[0][0].content == "Client, {{EMAIL_1}}"
    assert upstream.received_kwargs[0]["tool_choice"] == "any"

    llm, upstream = wrapped(AIMessage(content="", tool_calls=[call]))
    raw = llm.with_structured_output(Contact, include_raw=True).invoke(f"Client, {EMAIL}")
    assert raw["parsed"] == Contact(name="Client", email=EMAIL)
    assert raw["raw"].tool_calls[0]["args"]["email"] == EMAIL


def test_anonymization_failure_raises_and_the_model_is_never_called() -> None:
    class Broken:
        name = "broken"

        def detect(self, text: str, language: str) -> list[Span]:
            raise RuntimeError("detector down")

    llm, upstream = wrapped(veil=Veil(engine=Engine(detectors=[Broken()])))
    with pytest.raises(DetectionError):
        llm.invoke(f"Écrivez à {EMAIL}")
    with pytest.raises(DetectionError):
        list(llm.stream(f"Écrivez à {EMAIL}"))
    assert upstream.received == []


def test_a_token_the_scope_does_not_know_raises_unless_lenient() -> None:
    llm, _ = wrapped(AIMessage(content="write to {{EMAIL_7}}"))
    with pytest.raises(TokenNotFound):
        llm.invoke("hello")
    llm, _ = wrapped(AIMessage(content="write to {{EMAIL_7}}"), lenient=True)
    assert llm.invoke("hello").content == "write to {{EMAIL_7}}"


def test_without_a_scope_each_call_has_its_own_mapping_erased_at_the_end() -> None:
    veil = Veil(engine=RULES)
    llm, upstream = wrapped(AIMessage(content="{{EMAIL_1}}"), veil=veil)
    assert llm.invoke(f"{EMAIL}").content == EMAIL
    erased = [r for r in veil.audit.store.records() if r.event == "erase"]
    assert len(erased) == 1 and erased[0].details["count"] == 1
    assert veil.vault.records(veil.tenant, erased[0].details["scope"]) == []
    # A later call cannot restore a token of the earlier one: there is nothing left to restore it from.
    upstream.script.append(AIMessage(content="{{EMAIL_1}}"))
    with pytest.raises(TokenNotFound):
        llm.invoke("no value here")


def test_a_scope_given_in_the_config_keeps_one_mapping_across_calls() -> None:
    veil = Veil(engine=RULES)
    llm, upstream = wrapped(veil=veil)
    config = {"configurable": {"veil_scope": "conversation-9"}}
    llm.invoke(f"first {EMAIL}", config=config)
    upstream.script.append(AIMessage(content="as said, {{EMAIL_1}}"))
    assert llm.invoke("and then?", config=config).content == f"as said, {EMAIL}"
    assert veil.session("conversation-9").mapping() == {"{{EMAIL_1}}": EMAIL}


async def test_fifty_parallel_calls_on_different_scopes_never_mix_mappings() -> None:
    veil = Veil(engine=RULES)
    upstream = RecordingChatModel(chunk_size=4)
    llm = VeilChatModel(model=upstream, veil=veil)
    emails = [f"client{n}.tremblay@exemple{n}.qc.ca" for n in range(50)]

    async def one(n: int) -> tuple[str, str]:
        config = {"configurable": {"veil_scope": f"conversation-{n}"}}
        if n % 2:
            answer = await llm.ainvoke(f"mail {emails[n]}", config=config)
            return answer.text, emails[n]
        shown = [chunk.text async for chunk in llm.astream(f"mail {emails[n]}", config=config)]
        return "".join(shown), emails[n]

    results = await asyncio.gather(*(one(n) for n in range(50)))
    for text, email in results:
        assert text == f"You said: mail {email}"
    assert all(m[0].content == "mail {{EMAIL_1}}" for m in upstream.received)
    assert not any(email in upstream.seen_text() for email in emails)


def test_invented_tokens_inside_tool_arguments_fail_the_call_rather_than_reach_a_tool() -> None:
    call = {"name": "send", "args": {"to": "{{EMAIL_3}}"}, "id": "c1"}
    llm, _ = wrapped(AIMessage(content="", tool_calls=[call]))
    with pytest.raises(TokenNotFound):
        llm.invoke("hello")


def test_additional_kwargs_function_call_arguments_are_anonymized() -> None:
    llm, upstream = wrapped()
    legacy = AIMessage(content="", additional_kwargs={"function_call": {"name": "f", "arguments": json.dumps(
        {"email": EMAIL})}})  # fmt: skip
    llm.invoke([HumanMessage("hi"), legacy, HumanMessage("ok")])
    assert EMAIL not in upstream.seen_text()


def test_callbacks_see_the_restored_stream_once_and_count_usage_once() -> None:
    from langchain_core.callbacks import BaseCallbackHandler, UsageMetadataCallbackHandler

    class Tokens(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []
            self.starts = 0

        def on_chat_model_start(self, *args: object, **kwargs: object) -> None:
            self.starts += 1

        def on_llm_new_token(self, token: str, **kwargs: object) -> None:
            self.tokens.append(token)

    llm, _ = wrapped(chunk_size=2)
    tokens, usage = Tokens(), UsageMetadataCallbackHandler()
    shown = "".join(chunk.text for chunk in llm.stream(f"mail {EMAIL}", config={"callbacks": [tokens, usage]}))
    assert "".join(tokens.tokens) == shown == f"You said: mail {EMAIL}"
    assert tokens.starts == 1
    llm.invoke(f"mail {EMAIL}", config={"callbacks": [usage]})
    assert usage.usage_metadata["recording-fake-1"]["total_tokens"] == 2 * (2 + 4)


def test_streamed_content_blocks_are_restored_per_block_without_half_tokens() -> None:
    for size in (1, 3, 4):
        upstream = RecordingChatModel(chunk_size=size, stream_blocks=True)
        llm = VeilChatModel(model=upstream, veil=Veil(engine=RULES))
        chunks = list(llm.stream(f"NAS {SIN}, {EMAIL}"))
        pieces = [block["text"] for chunk in chunks for block in chunk.content if isinstance(block, dict)]
        assert all("{" not in piece and "}" not in piece for piece in pieces)
        full = chunks[0]
        for chunk in chunks[1:]:
            full = full + chunk
        assert full.text == f"You said: NAS {SIN}, {EMAIL}"


def test_a_stream_closed_early_still_erases_its_per_call_mapping() -> None:
    veil = Veil(engine=RULES)
    llm = VeilChatModel(model=RecordingChatModel(chunk_size=2), veil=veil)
    stream = llm.stream(f"mail {EMAIL}")
    next(stream)
    stream.close()
    erased = [r for r in veil.audit.store.records() if r.event == "erase"]
    assert len(erased) == 1 and veil.vault.records(veil.tenant, erased[0].details["scope"]) == []


def test_structured_output_streams_restored_partial_objects() -> None:
    call = {"name": "Contact", "args": {"name": "Client", "email": "{{EMAIL_1}}"}, "id": "c1"}
    llm, upstream = wrapped(AIMessage(content="", tool_calls=[call]), chunk_size=4)
    parts = list(llm.with_structured_output(Contact).stream(f"Client, {EMAIL}"))
    assert parts[-1] == Contact(name="Client", email=EMAIL)
    assert EMAIL not in upstream.seen_text()


class NonStreamingModel(RecordingChatModel):
    """A provider model with no streaming: LangChain's `stream()` yields its whole `AIMessage`."""

    _stream = BaseChatModel._stream  # type: ignore[assignment]
    _astream = BaseChatModel._astream  # type: ignore[assignment]


def test_a_model_that_cannot_stream_is_streamed_as_one_restored_message() -> None:
    call = {"name": "customer_file", "args": {"email": "{{EMAIL_1}}"}, "id": "call-1"}
    upstream = NonStreamingModel(script=[AIMessage("Writing to {{EMAIL_1}}", tool_calls=[call])])
    llm = VeilChatModel(model=upstream, veil=Veil(engine=RULES))
    chunks = list(llm.stream(f"Write to {EMAIL}"))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert whole.text == f"Writing to {EMAIL}"
    assert whole.tool_calls[0]["args"] == {"email": EMAIL}
    assert EMAIL not in upstream.seen_text()


async def test_a_model_that_cannot_stream_is_streamed_async_too() -> None:
    upstream = NonStreamingModel(script=[AIMessage("Writing to {{EMAIL_1}}")])
    llm = VeilChatModel(model=upstream, veil=Veil(engine=RULES))
    text = "".join([chunk.text async for chunk in llm.astream(f"Write to {EMAIL}")])
    assert text == f"Writing to {EMAIL}"
