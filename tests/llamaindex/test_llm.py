"""VeilLLM: every LLM entry point anonymizes on the way out and restores on the way back."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock, ToolCallBlock
from llama_index.core.llms import MockLLM
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel
from veil_llamaindex import VeilLLM

from veil import DetectionError, Engine, InputError, TokenNotFound, Veil

from .conftest import CANARIES, TOKEN, RecordingLLM, leaked, rules_engine

PROMPT = f"Écrivez à {CANARIES['email']} ou au {CANARIES['phone']}. NAS {CANARIES['sin']}, carte {CANARIES['card']}."


def user(text: str) -> list[ChatMessage]:
    return [
        ChatMessage(role=MessageRole.SYSTEM, content="You are helpful."),
        ChatMessage(role=MessageRole.USER, content=text),
    ]


def collect(stream: Any) -> list[Any]:
    return list(stream)


async def acollect(stream: Any) -> list[Any]:
    return [item async for item in await stream]


# -- the eight entry points ----------------------------------------------------------------------


def test_chat_sends_tokens_only_and_restores_the_answer(veil: Veil, upstream: RecordingLLM) -> None:
    llm = VeilLLM(llm=upstream, veil=veil, scope="conv-1")
    response = llm.chat(user(PROMPT))
    assert response.message.content == f"You said: {PROMPT}"
    assert leaked(upstream.seen) == []
    assert "{{EMAIL_1}}" in upstream.seen[1] and "{{CREDIT_CARD_1}}" in upstream.seen[1]


def test_the_default_engine_works_behind_the_wrapper(upstream: RecordingLLM) -> None:
    llm = VeilLLM(llm=upstream, scope="conv-1")  # a Veil() of its own, with the default engine
    assert llm.chat(user(PROMPT)).message.content == f"You said: {PROMPT}"
    assert leaked(upstream.seen) == []


def test_achat_sends_tokens_only_and_restores_the_answer(veil: Veil, upstream: RecordingLLM) -> None:
    llm = VeilLLM(llm=upstream, veil=veil, scope="conv-1")
    response = asyncio.run(llm.achat(user(PROMPT)))
    assert response.message.content == f"You said: {PROMPT}"
    assert leaked(upstream.seen) == []


def test_complete_and_acomplete_send_tokens_only_and_restore(veil: Veil, upstream: RecordingLLM) -> None:
    llm = VeilLLM(llm=upstream, veil=veil, scope="conv-1")
    assert llm.complete(PROMPT).text == f"Echo: {PROMPT}"
    assert asyncio.run(llm.acomplete(PROMPT)).text == f"Echo: {PROMPT}"
    assert leaked(upstream.seen) == []
    assert all("{{CA_SIN_1}}" in seen for seen in upstream.seen)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 7, 11, 64])
def test_stream_chat_restores_the_stream_for_every_chunking(veil: Veil, chunk_size: int) -> None:
    upstream = RecordingLLM(chunk_size=chunk_size)
    llm = VeilLLM(llm=upstream, veil=veil, scope="conv-1")
    responses = collect(llm.stream_chat(user(PROMPT)))
    assert "".join(r.delta for r in responses) == f"You said: {PROMPT}"
    assert responses[-1].message.content == f"You said: {PROMPT}"
    assert leaked(upstream.seen) == []


@pytest.mark.parametrize("chunk_size", [1, 4, 9])
def test_astream_chat_restores_the_stream(veil: Veil, chunk_size: int) -> None:
    upstream = RecordingLLM(chunk_size=chunk_size)
    llm = VeilLLM(llm=upstream, veil=veil, scope="conv-1")
    responses = asyncio.run(acollect(llm.astream_chat(user(PROMPT))))
    assert "".join(r.delta for r in responses) == f"You said: {PROMPT}"
    assert responses[-1].message.content == f"You said: {PROMPT}"
    assert leaked(upstream.seen) == []


@pytest.mark.parametrize("chunk_size", [1, 6, 13])
def test_stream_complete_and_astream_complete_restore_the_stream(veil: Veil, chunk_size: int) -> None:
    upstream = RecordingLLM(chunk_size=chunk_size)
    llm = VeilLLM(llm=upstream, veil=veil, scope="conv-1")
    for responses in (collect(llm.stream_complete(PROMPT)), asyncio.run(acollect(llm.astream_complete(PROMPT)))):
        assert "".join(r.delta for r in responses) == f"Echo: {PROMPT}"
        assert responses[-1].text == f"Echo: {PROMPT}"
    assert leaked(upstream.seen) == []


def test_token_split_across_chunks_is_never_emitted_half_restored(veil: Veil) -> None:
    upstream = RecordingLLM(chunk_size=1)  # every token arrives one character at a time
    llm = VeilLLM(llm=upstream, veil=veil, scope="conv-1")
    deltas = [r.delta for r in llm.stream_chat(user(f"to {CANARIES['email']} now"))]
    assert CANARIES["email"] in deltas  # the value appears whole, in one piece
    where = deltas.index(CANARIES["email"])
    assert "".join(deltas[:where]) == "You said: to "
    assert "".join(deltas[where + 1 :]) == " now"
    assert all("{" not in delta and "}" not in delta for delta in deltas)  # no fragment of a token is shown


def test_streamed_message_content_grows_with_restored_text_only(veil: Veil) -> None:
    llm = VeilLLM(llm=RecordingLLM(chunk_size=2), veil=veil, scope="conv-1")
    contents = [r.message.content or "" for r in llm.stream_chat(user(PROMPT))]
    for earlier, later in itertools.pairwise(contents):
        assert later.startswith(earlier)
        assert TOKEN.search(later) is None


# -- metadata and configuration -------------------------------------------------------------------


def test_metadata_is_the_wrapped_llms(veil: Veil, upstream: RecordingLLM) -> None:
    llm = VeilLLM(llm=upstream, veil=veil, scope="conv-1")
    assert llm.metadata == upstream.metadata
    assert llm.metadata.context_window == 4321 and llm.metadata.is_function_calling_model
    assert VeilLLM.class_name() == "VeilLLM"


def test_a_plain_llm_is_not_presented_as_function_calling(veil: Veil) -> None:
    llm = VeilLLM(llm=MockLLM(), veil=veil, scope="conv-1")
    assert llm.metadata.is_function_calling_model is False
    assert llm.metadata.is_chat_model is False


def test_prompt_settings_of_the_wrapped_llm_carry_over(veil: Veil) -> None:
    upstream = RecordingLLM(system_prompt="Answer in French.")
    assert VeilLLM(llm=upstream, veil=veil, scope="c").system_prompt == "Answer in French."


def test_predict_goes_through_the_wrapper(veil: Veil, upstream: RecordingLLM) -> None:
    from llama_index.core.prompts import PromptTemplate

    llm = VeilLLM(llm=upstream, veil=veil, scope="conv-1")
    answer = llm.predict(PromptTemplate("Customer card: {card}"), card=CANARIES["card"])
    assert answer == f"You said: Customer card: {CANARIES['card']}"
    assert leaked(upstream.seen) == []


def test_a_scope_is_required(veil: Veil, upstream: RecordingLLM) -> None:
    from veil import ConfigError

    with pytest.raises(ConfigError):
        VeilLLM(llm=upstream, veil=veil, scope="")


# -- fail closed -------------------------------------------------------------------------------------


class BrokenDetector:
    name = "broken"

    def detect(self, text: str, language: str) -> list[Any]:
        raise RuntimeError("detector down")


def test_a_failing_detector_stops_the_call_before_the_model(upstream: RecordingLLM) -> None:
    llm = VeilLLM(llm=upstream, veil=Veil(engine=Engine(detectors=[BrokenDetector()])), scope="conv-1")
    with pytest.raises(DetectionError):
        llm.chat(user(PROMPT))
    with pytest.raises(DetectionError):
        llm.complete(PROMPT)
    with pytest.raises(DetectionError):
        llm.stream_chat(user(PROMPT))
    with pytest.raises(DetectionError):
        asyncio.run(llm.astream_complete(PROMPT))
    assert upstream.seen == []


def test_an_image_block_is_refused_unless_media_is_allowed(veil: Veil, upstream: RecordingLLM) -> None:
    message = ChatMessage(role=MessageRole.USER, blocks=[TextBlock(text=PROMPT), ImageBlock(image=b"\x89PNG")])
    with pytest.raises(InputError, match="image block"):
        VeilLLM(llm=upstream, veil=veil, scope="c").chat([message])
    assert upstream.seen == []
    VeilLLM(llm=upstream, veil=veil, scope="c", allow_media=True).chat([message])
    assert leaked(upstream.seen) == []


def test_an_unreadable_additional_kwarg_is_refused(veil: Veil, upstream: RecordingLLM) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return CANARIES["email"]

    message = ChatMessage(role=MessageRole.USER, content="hi", additional_kwargs={"note": Opaque()})
    with pytest.raises(InputError, match="additional_kwargs"):
        VeilLLM(llm=upstream, veil=veil, scope="c").chat([message])
    assert upstream.seen == []


def test_a_token_the_model_made_up_raises_unless_lenient(veil: Veil) -> None:
    upstream = RecordingLLM(answer=lambda messages: "Contact {{EMAIL_7}}")
    with pytest.raises(TokenNotFound):
        VeilLLM(llm=upstream, veil=veil, scope="c").chat(user("hello"))
    lenient = VeilLLM(llm=upstream, veil=veil, scope="c", lenient_restore=True)
    assert lenient.chat(user("hello")).message.content == "Contact {{EMAIL_7}}"


def test_errors_carry_no_personal_value(veil: Veil) -> None:
    upstream = RecordingLLM(answer=lambda messages: "Contact {{EMAIL_7}}")
    with pytest.raises(TokenNotFound) as caught:
        VeilLLM(llm=upstream, veil=veil, scope="c").chat(user(PROMPT))
    assert leaked([str(caught.value)]) == []


# -- structured parts of messages ----------------------------------------------------------------------


class FunctionCall(BaseModel):
    name: str
    arguments: str


class ToolCall(BaseModel):
    id: str
    type: str
    function: FunctionCall


def test_openai_style_tool_calls_in_history_are_anonymized_and_answers_restored_with_their_types(veil: Veil) -> None:
    arguments = json.dumps({"to": CANARIES["email"], "id": CANARIES["sin"]})
    call = ToolCall(id="call_9", type="function", function=FunctionCall(name="send", arguments=arguments))
    history = [
        ChatMessage(role=MessageRole.USER, content="send it"),
        ChatMessage(role=MessageRole.ASSISTANT, content="", additional_kwargs={"tool_calls": [call]}),
        ChatMessage(
            role=MessageRole.TOOL, content=f"sent to {CANARIES['phone']}", additional_kwargs={"tool_call_id": "call_9"}
        ),
    ]

    def answer(messages: Sequence[ChatMessage]) -> str:
        call = messages[1].additional_kwargs["tool_calls"][0]
        assert isinstance(call, ToolCall)  # the provider gets its own types back
        return call.function.arguments

    upstream = RecordingLLM(answer=answer)
    response = VeilLLM(llm=upstream, veil=veil, scope="c").chat(history)
    assert leaked(upstream.seen) == []
    assert '\\"id\\": \\"{{CA_SIN_1}}' in upstream.seen[1]  # arguments are data, even under descriptive keys
    assert "call_9" in upstream.seen[1] and "call_9" in upstream.seen[2]  # ids untouched
    assert CANARIES["email"] in (response.message.content or "")


def test_tool_call_blocks_and_thinking_in_history_are_anonymized(veil: Veil, upstream: RecordingLLM) -> None:
    from llama_index.core.base.llms.types import ThinkingBlock

    history = [
        ChatMessage(role=MessageRole.USER, content="go"),
        ChatMessage(
            role=MessageRole.ASSISTANT,
            blocks=[
                ThinkingBlock(content=f"the card is {CANARIES['card']}"),
                ToolCallBlock(
                    tool_call_id="t1",
                    tool_name="charge",
                    tool_kwargs={"card": CANARIES["card"], "type": CANARIES["sin"]},
                ),
            ],
        ),
        ChatMessage(
            role=MessageRole.TOOL, content=f"charged {CANARIES['card']}", additional_kwargs={"tool_call_id": "t1"}
        ),
        ChatMessage(role=MessageRole.USER, content="thanks"),
    ]
    VeilLLM(llm=upstream, veil=veil, scope="c").chat(history)
    assert leaked(upstream.seen) == []
    assert '"tool_name":"charge"' in upstream.seen[1]


# -- function calling ------------------------------------------------------------------------------------


def test_tool_arguments_are_restored_before_the_tool_runs_and_its_output_goes_back_anonymized(
    veil: Veil, upstream: RecordingLLM
) -> None:
    received: list[str] = []

    def send_mail(recipient: str) -> str:
        """Send the summary to a recipient."""
        received.append(recipient)
        return f"Sent to {recipient}; their SIN on file is {CANARIES['sin']}."

    tool = FunctionTool.from_defaults(fn=send_mail)
    llm = VeilLLM(llm=upstream, veil=veil, scope="conv-7")
    history: list[ChatMessage] = []
    response = llm.chat_with_tools([tool], user_msg=f"Mail {CANARIES['email']} the summary", chat_history=history)
    calls = llm.get_tool_calls_from_response(response)
    assert calls[0].tool_kwargs == {"recipient": CANARIES["email"]}  # restored for the tool
    output = tool(**calls[0].tool_kwargs)
    assert received == [CANARIES["email"]]
    history += [
        ChatMessage(role=MessageRole.USER, content=f"Mail {CANARIES['email']} the summary"),
        response.message,
        ChatMessage(role=MessageRole.TOOL, content=str(output), additional_kwargs={"tool_call_id": calls[0].tool_id}),
    ]
    final = llm.chat_with_tools([tool], chat_history=history)
    assert final.message.content == f"Done: Sent to {CANARIES['email']}; their SIN on file is {CANARIES['sin']}."
    assert leaked(upstream.seen) == []
    assert any("{{CA_SIN_1}}" in seen for seen in upstream.seen)  # the tool's output reached the model tokenized


def test_predict_and_call_runs_the_tool_with_real_values(veil: Veil, upstream: RecordingLLM) -> None:
    received: list[str] = []

    def lookup(recipient: str) -> str:
        """Look a customer up."""
        received.append(recipient)
        return f"customer {recipient}"

    llm = VeilLLM(llm=upstream, veil=veil, scope="conv-8")
    result = llm.predict_and_call([FunctionTool.from_defaults(fn=lookup)], user_msg=f"Find {CANARIES['phone']}")
    assert received == [CANARIES["phone"]]
    assert result.response == f"customer {CANARIES['phone']}"
    assert asyncio.run(
        llm.apredict_and_call([FunctionTool.from_defaults(fn=lookup)], user_msg=f"Find {CANARIES['phone']}")
    ).response
    assert leaked(upstream.seen) == []


def test_function_calling_on_a_plain_llm_says_what_to_do(veil: Veil) -> None:
    from veil import ConfigError

    llm = VeilLLM(llm=RecordingLLM(function_calling=False), veil=veil, scope="c")
    assert llm.metadata.is_function_calling_model is False
    with pytest.raises(ConfigError, match="function calling"):
        llm._prepare_chat_with_tools([], user_msg="hi")


def test_astream_chat_with_tools_yields_restored_tool_calls(veil: Veil, upstream: RecordingLLM) -> None:
    def notify(recipient: str) -> str:
        """Notify someone."""
        return "ok"

    llm = VeilLLM(llm=upstream, veil=veil, scope="conv-9")

    async def run() -> list[Any]:
        stream = await llm.astream_chat_with_tools(
            [FunctionTool.from_defaults(fn=notify)], user_msg=f"Ping {CANARIES['email']}"
        )
        return [r async for r in stream]

    responses = asyncio.run(run())
    calls = llm.get_tool_calls_from_response(responses[-1])
    assert calls[0].tool_kwargs == {"recipient": CANARIES["email"]}
    assert leaked(upstream.seen) == []


# -- concurrency: one wrapper, many scopes, no mixed mappings ----------------------------------------------


PEOPLE = {f"conv-{i}": f"client{i}.tremblay@exemple.qc.ca" for i in range(12)}


def test_parallel_threads_on_different_scopes_never_mix_mappings(veil: Veil) -> None:
    upstream = RecordingLLM(chunk_size=2)
    base = VeilLLM(llm=upstream, veil=veil, scope="unused")

    def converse(scope: str) -> tuple[str, str]:
        llm = base.for_scope(scope)
        answer = llm.chat(user(f"I am {PEOPLE[scope]}")).message.content or ""
        streamed = "".join(r.delta for r in llm.stream_chat(user(f"Still {PEOPLE[scope]}")))
        return answer, streamed

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = dict(zip(PEOPLE, pool.map(converse, list(PEOPLE) * 3), strict=False))
    for scope, (answer, streamed) in results.items():
        assert answer == f"You said: I am {PEOPLE[scope]}"
        assert streamed == f"You said: Still {PEOPLE[scope]}"
    assert all("@" not in seen for seen in upstream.seen)
    assert all(veil.session(scope).restore("{{EMAIL_1}}") == value for scope, value in PEOPLE.items())


def test_concurrent_tasks_on_different_scopes_never_mix_mappings(veil: Veil) -> None:
    upstream = RecordingLLM(chunk_size=3)
    base = VeilLLM(llm=upstream, veil=veil, scope="unused")

    async def converse(scope: str) -> tuple[str, str]:
        llm = base.for_scope(scope)
        answer = (await llm.achat(user(f"I am {PEOPLE[scope]}"))).message.content or ""
        streamed = "".join([r.delta async for r in await llm.astream_chat(user(f"Still {PEOPLE[scope]}"))])
        return answer, streamed

    async def run() -> list[tuple[str, str]]:
        return await asyncio.gather(*(converse(scope) for scope in PEOPLE))

    for scope, (answer, streamed) in zip(PEOPLE, asyncio.run(run()), strict=True):
        assert answer == f"You said: I am {PEOPLE[scope]}"
        assert streamed == f"You said: Still {PEOPLE[scope]}"
    assert all("@" not in seen for seen in upstream.seen)


def test_a_value_keeps_its_token_across_calls_of_one_scope(veil: Veil, upstream: RecordingLLM) -> None:
    llm = VeilLLM(llm=upstream, veil=veil, scope="conv-1")
    llm.chat(user(f"first {CANARIES['email']}"))
    llm.chat(user(f"other a.b@exemple.ca then {CANARIES['email']}"))
    assert "first {{EMAIL_1}}" in upstream.seen[1]
    assert "other {{EMAIL_2}} then {{EMAIL_1}}" in upstream.seen[4]


# -- what LlamaIndex builds on the LLM ------------------------------------------------------------------


class Contact(BaseModel):
    recipient: str


def test_structured_predict_fills_the_model_with_real_values(veil: Veil, upstream: RecordingLLM) -> None:
    from llama_index.core.prompts import PromptTemplate

    llm = VeilLLM(llm=upstream, veil=veil, scope="conv-1")
    contact = llm.structured_predict(Contact, PromptTemplate("Contact {who}"), who=CANARIES["email"])
    assert contact == Contact(recipient=CANARIES["email"])
    assert leaked(upstream.seen) == []


def test_a_chat_engine_keeps_the_conversation_anonymized_for_the_model(veil: Veil, upstream: RecordingLLM) -> None:
    from llama_index.core.chat_engine import SimpleChatEngine

    engine = SimpleChatEngine.from_defaults(llm=VeilLLM(llm=upstream, veil=veil, scope="conv-1"))
    assert engine.chat(f"I am {CANARIES['email']}").response == f"You said: I am {CANARIES['email']}"
    streamed = "".join(engine.stream_chat(f"Call {CANARIES['phone']}").response_gen)
    assert streamed == f"You said: Call {CANARIES['phone']}"
    assert leaked(upstream.seen) == []
    assert any("You said: I am {{EMAIL_1}}" in seen for seen in upstream.seen)  # history goes back tokenized


WORDS = [*CANARIES.values(), "bonjour", "NAS", "carte", "EMAIL_1", "{", "}", "_", " ", "\n", "é"]


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=12),
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=40),
    separator=st.sampled_from([" ", ""]),  # "" lets the words form token-shaped text: {{EMAIL_1}}
)
@example(words=[CANARIES["phone"], CANARIES["phone"]], cuts=[], separator="")  # regression
def test_streamed_answers_equal_the_unary_answer_for_any_text_and_any_cuts(
    words: list[str], cuts: list[int], separator: str
) -> None:
    text = separator.join(words)
    veil = Veil(engine=rules_engine())
    upstream = RecordingLLM(cuts=cuts)
    llm = VeilLLM(llm=upstream, veil=veil, scope="prop")
    unary = llm.chat(user(text)).message.content
    deltas = [r.delta for r in llm.stream_chat(user(text))]
    assert "".join(deltas) == unary
    if separator:
        assert unary == f"You said: {text}"
    else:
        # Glued words can give one value two surface forms ("…3456+1 514 872 3456": the second
        # phone is read without its "+"); both share one token and restore as the first form, as
        # in the core's own round trip. The adapter adds nothing to that.
        core = Veil(engine=rules_engine()).session("core")
        assert unary == "You said: " + core.restore(core.anonymize(text).text)
    if separator:  # glued to a word ("qc.ca130 692 544") a number is not an identifier for the rules
        assert leaked(upstream.seen) == []


def test_one_new_value_sent_from_many_threads_at_once_gets_one_token(veil: Veil) -> None:
    upstream = RecordingLLM()
    llm = VeilLLM(llm=upstream, veil=veil, scope="shared")

    def ask(_: int) -> str:
        return llm.chat(user(f"mail {CANARIES['email']}")).message.content or ""

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(32)))
    assert set(answers) == {f"You said: mail {CANARIES['email']}"}
    prompts = [seen for seen in upstream.seen if '"role":"user"' in seen]
    assert len(prompts) == 32 and all("mail {{EMAIL_1}}" in seen for seen in prompts)
