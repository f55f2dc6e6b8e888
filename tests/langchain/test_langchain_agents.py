"""VeilMiddleware in LangChain 1.x agents (`create_agent`): tools get values, the model tokens,
the user values; one mapping per thread; streaming, async, checkpointer and structured output."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from agent_fakes import Directory, agent_policy, first_token
from langchain.agents import create_agent
from langchain.agents.middleware import (
    HumanInTheLoopMiddleware,
    ModelRequest,
    ModelResponse,
    SummarizationMiddleware,
    wrap_model_call,
)
from langchain.agents.structured_output import ProviderStrategy, ToolStrategy
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_fakes import RecordingChatModel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.prebuilt.tool_node import ToolRuntime
from langgraph.types import Command
from pydantic import BaseModel
from services import POSTGRES_DSN, postgres_schema
from veil_langchain import BinaryContentRefused, VeilChatModel
from veil_langchain.agents import VeilMiddleware

from veil import ConfigError, Engine, Span, TokenNotFound, Veil
from veil.crypto import LocalKeyFileProvider
from veil.detect import BUILTIN_RULES, RuleDetector
from veil.entities import Language

EMAIL = "marie.tremblay@exemple.qc.ca"
PHONE = "+1 514 872 3456"
SYSTEM_EMAIL = "support-lead@exemple.qc.ca"
RULES = Engine(detectors=[RuleDetector(BUILTIN_RULES)])
ANSWER = f"Done: {EMAIL} was told at {PHONE} that the order has shipped."  # what agent_policy says, restored
MODES = ["restored", "anonymized"]


def thread(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": name}}


def answer_for(email: str, phone: str) -> str:
    return f"Done: {email} was told at {phone} that the order has shipped."


def ask(email: str = EMAIL) -> dict[str, Any]:
    return {"messages": [HumanMessage(f"Please tell {email} that the order has shipped.")]}


class Setup:
    """One agent: the recording upstream model, the tools' directory, the middleware, the checkpointer."""

    def __init__(self, mode: str = "restored", *, customers: dict[str, str] | None = None, chunk_size: int = 3,
                 middleware: list[Any] | None = None, veil: Veil | None = None, **options: Any) -> None:  # fmt: skip
        self.veil = veil if veil is not None else Veil(engine=RULES)
        self.model = RecordingChatModel(respond=agent_policy, chunk_size=chunk_size)
        self.directory = Directory(customers or {EMAIL: PHONE})
        self.middleware = VeilMiddleware(veil=self.veil, state=mode, **options)  # type: ignore[arg-type]
        self.saver = InMemorySaver()
        self.agent = create_agent(
            self.model, self.directory.tools(), system_prompt=f"Escalate to {SYSTEM_EMAIL}.",
            middleware=[*(middleware or []), self.middleware], checkpointer=self.saver,
        )  # fmt: skip

    def user_view(self, result: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        return result if self.middleware.state == "restored" else self.middleware.restore(result, config)

    def token_of(self, value: str, config: dict[str, Any]) -> str:
        scope = self.middleware.scope_for(config)  # type: ignore[arg-type]
        assert scope is not None
        return {v: token for token, v in self.veil.session(scope).mapping().items()}[value]

    def checkpoint_text(self) -> str:
        return repr(self.saver.storage) + repr(self.saver.writes) + repr(self.saver.blobs)


def assert_model_saw_no_value(model: RecordingChatModel, *values: str) -> None:
    seen = model.seen_text()
    assert model.received, "the model was never called"
    for value in (EMAIL, PHONE, SYSTEM_EMAIL, *values):
        assert value not in seen, f"the model received {value!r}"


# -- the agent loop ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_tools_get_values_the_model_tokens_and_the_user_values(mode: str) -> None:
    setup = Setup(mode)
    result = setup.agent.invoke(ask(), thread("t1"))

    assert setup.directory.lookups == [EMAIL]
    assert setup.directory.sent == [(PHONE, "Your order has shipped.")]
    assert setup.user_view(result, thread("t1"))["messages"][-1].text == ANSWER
    assert_model_saw_no_value(setup.model)
    email, phone = setup.token_of(EMAIL, thread("t1")), setup.token_of(PHONE, thread("t1"))
    first_call = setup.model.received[0]
    assert first_call[0].text == f"Escalate to {setup.token_of(SYSTEM_EMAIL, thread('t1'))}."
    assert first_call[-1].text == f"Please tell {email} that the order has shipped."
    assert setup.model.received[1][-1].text == f"Customer {email}, phone {phone}, plan Gold"


def test_restored_state_holds_values_and_the_checkpointer_stores_them() -> None:
    setup = Setup("restored")
    result = setup.agent.invoke(ask(), thread("t1"))
    ai = [m for m in result["messages"] if isinstance(m, AIMessage)]
    assert ai[0].tool_calls[0]["args"] == {"email": EMAIL}
    assert ai[-1].text == ANSWER
    # The trade-off of this mode, as documented: the checkpoint holds the conversation's values.
    assert EMAIL in setup.checkpoint_text()


def test_anonymized_state_keeps_values_out_of_the_checkpointer() -> None:
    setup = Setup("anonymized")
    config = thread("t1")
    result = setup.agent.invoke(setup.middleware.anonymize_input(ask(), config), config)

    state = setup.agent.get_state(config).values  # type: ignore[arg-type]
    texts = [m.text for m in state["messages"]]
    assert texts[0] == "Please tell {{EMAIL_1}} that the order has shipped."
    assert "Customer {{EMAIL_1}}, phone {{PHONE_1}}, plan Gold" in texts
    assert state["messages"][1].tool_calls[0]["args"] == {"email": "{{EMAIL_1}}"}
    stored = setup.checkpoint_text()
    assert EMAIL not in stored and PHONE not in stored and "{{EMAIL_1}}" in stored
    assert setup.directory.sent == [(PHONE, "Your order has shipped.")]
    assert setup.middleware.restore(result, config)["messages"][-1].text == ANSWER


def test_an_input_given_as_it_is_stays_in_the_checkpoint_history_only() -> None:
    """LangGraph checkpoints the input before middleware runs: `before_model` replaces it in the
    state (and so in what the model and the next turns see), not in the earlier checkpoints."""
    setup = Setup("anonymized")
    config = thread("t1")
    setup.agent.invoke(ask(), config)
    assert setup.agent.get_state(config).values["messages"][0].text.startswith("Please tell {{EMAIL_1}}")
    history = list(setup.agent.get_state_history(config))
    assert any(EMAIL in repr(snapshot.values) for snapshot in history)
    assert_model_saw_no_value(setup.model)


def test_a_second_turn_on_a_thread_keeps_its_mapping() -> None:
    setup = Setup("anonymized")
    setup.agent.invoke(ask(), thread("t1"))
    setup.agent.invoke({"messages": [HumanMessage(f"And again for {EMAIL}, please.")]}, thread("t1"))
    lookups = [call[-1].text for call in setup.model.received if call[-1].text.startswith("Customer")]
    assert lookups == ["Customer {{EMAIL_1}}, phone {{PHONE_1}}, plan Gold"] * 2  # one token, both turns
    assert setup.directory.lookups == [EMAIL, EMAIL]
    assert_model_saw_no_value(setup.model)


def test_erasing_a_thread_makes_its_tokens_unrestorable() -> None:
    setup = Setup("anonymized")
    result = setup.agent.invoke(ask(), thread("t1"))
    assert setup.middleware.erase(thread("t1")) == 3
    with pytest.raises(TokenNotFound):
        setup.middleware.restore(result, thread("t1"))


# -- scopes ---------------------------------------------------------------------------------------


def test_scope_prefix_callable_and_explicit_veil_scope() -> None:
    middleware = VeilMiddleware(veil=Veil(engine=RULES))
    assert middleware.scope_for(thread("42")) == "thread:42"
    assert middleware.scope_for({"configurable": {"thread_id": "42", "veil_scope": "chat-9"}}) == "chat-9"
    assert middleware.scope_for({}) is None
    assert VeilMiddleware(scope="support").scope_for(thread("42")) == "support:42"
    by_user = VeilMiddleware(scope=lambda config: f"user-{config['configurable']['user']}")
    assert by_user.scope_for({"configurable": {"user": "7", "thread_id": "42"}}) == "user-7"
    with pytest.raises(ConfigError, match="non-empty string"):
        VeilMiddleware(scope=lambda config: "").scope_for(thread("1"))
    with pytest.raises(ConfigError, match="state must be"):
        VeilMiddleware(state="plain")  # type: ignore[arg-type]


def test_a_run_without_thread_has_its_own_mapping_erased_after_each_call() -> None:
    setup = Setup("restored")
    setup.agent.checkpointer = None
    result = create_agent(setup.model, setup.directory.tools(), middleware=[setup.middleware]).invoke(ask())
    assert result["messages"][-1].text == ANSWER
    assert setup.directory.lookups == [EMAIL]
    assert_model_saw_no_value(setup.model)
    erased = [record for record in setup.veil.audit.store.records() if record.event == "erase"]
    assert len(erased) == 3  # one scope per model call, each erased
    assert all(setup.veil.vault.records(setup.veil.tenant, event.details["scope"]) == [] for event in erased)


def test_anonymized_state_needs_a_thread() -> None:
    setup = Setup("anonymized")
    agent = create_agent(setup.model, setup.directory.tools(), middleware=[setup.middleware])
    with pytest.raises(ConfigError, match="thread_id"):
        agent.invoke(ask())
    assert not setup.model.received


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def persistent_veil(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Veil]:
    """The vaults a deployment uses: threads share one vault, each thread its own scope in it."""
    if request.param == "memory":
        yield Veil(engine=RULES)
    elif request.param == "sqlite":
        veil = Veil.open(tmp_path / "veil", engine=RULES)
        yield veil
        veil.close()
    else:
        from veil.vault.postgres import PostgresVault

        schemas = postgres_schema()
        vault = PostgresVault(POSTGRES_DSN, schema=next(schemas), pool_size=8)
        veil = Veil(engine=RULES, vault=vault, keys=LocalKeyFileProvider(tmp_path / "keys.json"))
        yield veil
        veil.close()
        next(schemas, None)


def test_twenty_concurrent_threads_never_share_a_mapping(persistent_veil: Veil) -> None:
    customers = {f"client{n}@exemple{n}.ca": f"+1 514 872 {3400 + n:04d}" for n in range(20)}
    setup = Setup("anonymized", customers=customers, veil=persistent_veil)

    def run(email: str) -> tuple[str, dict[str, Any]]:
        config = thread(email.split("@", maxsplit=1)[0])
        return email, setup.middleware.restore(setup.agent.invoke(ask(email), config), config)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(run, customers))

    for email, result in results:
        assert result["messages"][-1].text == answer_for(email, customers[email])
        scope = setup.middleware.scope_for(thread(email.split("@", maxsplit=1)[0]))
        assert scope is not None
        mapping = setup.veil.session(scope).mapping()
        assert sorted(mapping.values()) == sorted([SYSTEM_EMAIL, email, customers[email]])
    assert sorted(setup.directory.lookups) == sorted(customers)
    assert sorted(setup.directory.sent) == sorted((phone, "Your order has shipped.") for phone in customers.values())
    # Each thread numbers its own tokens: a mixed mapping would have handed out {{EMAIL_3}} and beyond.
    seen = setup.model.seen_text()
    assert "{{EMAIL_3}}" not in seen and "{{PHONE_2}}" not in seen
    assert_model_saw_no_value(setup.model, *customers, *customers.values())


async def test_twenty_concurrent_async_threads_never_share_a_mapping() -> None:
    customers = {f"client{n}@exemple{n}.ca": f"+1 514 872 {3400 + n:04d}" for n in range(20)}
    setup = Setup("restored", customers=customers)
    results = await asyncio.gather(*(setup.agent.ainvoke(ask(email), thread(email)) for email in customers))
    for email, result in zip(customers, results, strict=True):
        assert result["messages"][-1].text == answer_for(email, customers[email])
    assert sorted(setup.directory.lookups) == sorted(customers)
    seen = setup.model.seen_text()
    assert "{{EMAIL_3}}" not in seen and "{{PHONE_2}}" not in seen
    assert_model_saw_no_value(setup.model, *customers, *customers.values())


# -- streaming and async ----------------------------------------------------------------------------


def streamed_answer(items: list[tuple[BaseMessage, dict[str, Any]]]) -> tuple[str, list[AIMessageChunk]]:
    chunks = [message for message, _ in items if isinstance(message, AIMessageChunk)]
    return "".join(chunk.text for chunk in chunks), chunks


def assert_stream_restored(chunks: list[AIMessageChunk]) -> None:
    for chunk in chunks:
        assert not re.search(r"\{|\}|EMAIL|PHONE", chunk.text), f"a chunk shows a token or part of one: {chunk.text!r}"
        for call in chunk.tool_call_chunks:
            assert not re.search(r"\{\{|EMAIL_|PHONE_", call.get("args") or ""), call


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("chunk_size", [1, 2, 5, 7])
def test_message_stream_shows_restored_tokens_never_half_a_token(mode: str, chunk_size: int) -> None:
    setup = Setup(mode, chunk_size=chunk_size)
    items = list(setup.agent.stream(ask(), thread("t1"), stream_mode="messages"))
    text, chunks = streamed_answer(items)
    assert text == ANSWER
    assert_stream_restored(chunks)
    streamed_args = "".join(c.get("args") or "" for chunk in chunks for c in chunk.tool_call_chunks)
    assert EMAIL in streamed_args and PHONE in streamed_args
    assert setup.directory.sent == [(PHONE, "Your order has shipped.")]
    assert_model_saw_no_value(setup.model)


@pytest.mark.parametrize("mode", MODES)
async def test_async_stream_and_invoke(mode: str) -> None:
    setup = Setup(mode, chunk_size=4)
    items = [item async for item in setup.agent.astream(ask(), thread("t1"), stream_mode="messages")]
    text, chunks = streamed_answer(items)
    assert text == ANSWER
    assert_stream_restored(chunks)
    result = await setup.agent.ainvoke({"messages": [HumanMessage(f"Once more for {EMAIL}.")]}, thread("t1"))
    assert setup.user_view(result, thread("t1"))["messages"][-1].text == ANSWER
    assert setup.directory.lookups == [EMAIL, EMAIL]
    assert_model_saw_no_value(setup.model)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stream_mode", ["updates", "values", "messages", "debug"])
def test_no_stream_mode_hands_the_model_a_value(mode: str, stream_mode: str) -> None:
    setup = Setup(mode)
    items = list(setup.agent.stream(ask(), thread("t1"), stream_mode=stream_mode))  # type: ignore[arg-type]
    assert items
    assert setup.directory.sent == [(PHONE, "Your order has shipped.")]
    assert_model_saw_no_value(setup.model)
    if mode == "restored" and stream_mode == "values":
        assert items[-1]["messages"][-1].text == ANSWER


# -- other middleware, structured output, content blocks ----------------------------------------------


def test_a_model_swapped_by_another_middleware_still_gets_tokens_only() -> None:
    other = RecordingChatModel(respond=agent_policy)

    @wrap_model_call  # type: ignore[arg-type]
    def fallback(request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]) -> Any:
        return handler(request.override(model=other))

    setup = Setup("restored", middleware=[])
    agent = create_agent(setup.model, setup.directory.tools(), middleware=[setup.middleware, fallback],
                         checkpointer=setup.saver)  # fmt: skip
    result = agent.invoke(ask(), thread("t1"))
    assert not setup.model.received
    assert_model_saw_no_value(other)
    assert setup.directory.lookups == [EMAIL]
    assert result["messages"][-1].text == ANSWER


def test_a_value_the_detectors_miss_once_restored_is_still_replaced() -> None:
    class NameAfterIntro:
        """A contextual detector (as NER is): a name is found only after "my name is"."""

        name = "intro-names"

        def detect(self, text: str, language: Language) -> list[Span]:
            found = re.search(r"my name is (\w+ \w+)", text, re.IGNORECASE)
            return [Span(found.start(1), found.end(1), "PERSON", 0.9, "user:intro")] if found else []

    model = RecordingChatModel(respond=lambda messages: AIMessage(f"Hello {{{{PERSON_1}}}}, noted. ({len(messages)})"))
    veil = Veil(engine=Engine(detectors=[NameAfterIntro(), RuleDetector(BUILTIN_RULES)]))
    agent = create_agent(model, [], middleware=[VeilMiddleware(veil=veil)], checkpointer=InMemorySaver())
    first = agent.invoke({"messages": [HumanMessage("My name is Céline Trudel.")]}, thread("t1"))
    assert first["messages"][-1].text == "Hello Céline Trudel, noted. (1)"
    agent.invoke({"messages": [HumanMessage("Thanks!")]}, thread("t1"))
    assert "Céline" not in model.seen_text()
    assert model.received[-1][1].text == "Hello {{PERSON_1}}, noted. (1)"


class ContactCard(BaseModel):
    email: str
    phone: str
    note: str


def card_policy(provider: bool) -> Callable[[list[BaseMessage]], AIMessage]:
    def respond(messages: list[BaseMessage]) -> AIMessage:
        asked = messages[-1].text
        card = {"email": first_token(asked, "EMAIL"), "phone": first_token(asked, "PHONE"), "note": 'asked "where"'}
        if provider:
            return AIMessage(json.dumps(card))
        return AIMessage("", tool_calls=[{"name": "ContactCard", "args": card, "id": "call-card"}])

    return respond


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("strategy", ["tool", "provider"])
def test_structured_output_is_restored_for_the_user(mode: str, strategy: str) -> None:
    veil = Veil(engine=RULES)
    model = RecordingChatModel(respond=card_policy(strategy == "provider"))
    middleware = VeilMiddleware(veil=veil, state=mode)  # type: ignore[arg-type]
    response_format = ToolStrategy(ContactCard) if strategy == "tool" else ProviderStrategy(ContactCard)
    agent = create_agent(model, [], system_prompt=f"Escalate to {SYSTEM_EMAIL}.", response_format=response_format,
                         middleware=[middleware], checkpointer=InMemorySaver())  # fmt: skip
    config = thread("t1")
    result = agent.invoke({"messages": [HumanMessage(f"Card for {EMAIL}, phone {PHONE}")]}, config)
    card = result["structured_response"]
    assert isinstance(card, ContactCard)
    if mode == "anonymized":
        assert (card.email, card.phone) == ("{{EMAIL_1}}", "{{PHONE_1}}")
        card = middleware.restore(result, config)["structured_response"]
        assert isinstance(card, ContactCard)
    assert (card.email, card.phone) == (EMAIL, PHONE)
    assert_model_saw_no_value(model)
    if strategy == "provider":
        assert model.received_kwargs[0]["response_format"]["json_schema"]["name"] == "ContactCard"


def test_binary_blocks_are_refused_before_the_model_is_called() -> None:
    setup = Setup("restored")
    image = {"type": "image", "base64": "aGVsbG8=", "mime_type": "image/png"}
    with pytest.raises(BinaryContentRefused):
        setup.agent.invoke({"messages": [HumanMessage([{"type": "text", "text": EMAIL}, image])]}, thread("t1"))
    assert not setup.model.received


def test_tool_results_in_the_anonymized_state() -> None:
    setup = Setup("anonymized")
    setup.agent.invoke(ask(), thread("t1"))
    tool_messages = [m for m in setup.agent.get_state(thread("t1")).values["messages"] if isinstance(m, ToolMessage)]
    expected = ["Customer {{EMAIL_1}}, phone {{PHONE_1}}, plan Gold", "sent to {{PHONE_1}}"]
    assert [m.text for m in tool_messages] == expected


def artifact_and_command_tools(received: list[str]) -> list[Any]:
    @tool(response_format="content_and_artifact")
    def lookup_customer(email: str) -> tuple[str, dict[str, str]]:
        """The customer file of an e-mail address, with the raw record as artifact."""
        received.append(email)
        return f"Customer {email}", {"email": email, "phone": PHONE}

    @tool
    def send_message(phone: str, text: str, runtime: ToolRuntime) -> Command[Any]:
        """Send a text message to a phone number (answers with a state update)."""
        received.append(phone)
        reply = ToolMessage(f"sent to {PHONE}", tool_call_id=runtime.tool_call_id, name="send_message")
        return Command(update={"messages": [reply]})

    return [lookup_customer, send_message]


def artifact_policy(messages: list[BaseMessage]) -> AIMessage:
    last = messages[-1]
    if isinstance(last, HumanMessage):
        email = first_token(last.text, "EMAIL")
        return AIMessage("", tool_calls=[{"name": "lookup_customer", "args": {"email": email}, "id": "c1"}])
    if isinstance(last, ToolMessage) and last.name == "lookup_customer":
        args = {"phone": "{{PHONE_1}}", "text": "shipped"}
        return AIMessage("", tool_calls=[{"name": "send_message", "args": args, "id": "c2"}])
    return AIMessage(f"Done: {last.text}")


@pytest.mark.parametrize("asynchronous", [False, True])
def test_anonymized_state_covers_artifacts_and_commands_from_tools(asynchronous: bool) -> None:
    veil = Veil(engine=RULES)
    received: list[str] = []
    model = RecordingChatModel(respond=artifact_policy)
    middleware = VeilMiddleware(veil=veil, state="anonymized")
    agent = create_agent(model, artifact_and_command_tools(received), middleware=[middleware],
                         checkpointer=InMemorySaver())  # fmt: skip
    config = thread("t1")
    # The phone number is in the thread's mapping before the model names it (the user gave it).
    question = middleware.anonymize_input({"messages": [HumanMessage(f"Text {PHONE} about {EMAIL}")]}, config)
    run = agent.ainvoke(question, config) if asynchronous else None
    result = asyncio.run(run) if run is not None else agent.invoke(question, config)
    assert received == [EMAIL, PHONE]
    saver: Any = agent.checkpointer
    stored = repr(saver.storage) + repr(saver.blobs) + repr(saver.writes)
    assert EMAIL not in stored and PHONE not in stored
    lookup = next(m for m in result["messages"] if isinstance(m, ToolMessage) and m.name == "lookup_customer")
    assert lookup.artifact == {"email": "{{EMAIL_1}}", "phone": "{{PHONE_1}}"}
    assert middleware.restore(result, config)["messages"][-1].text == f"Done: sent to {PHONE}"
    assert_model_saw_no_value(model)


def test_wrapping_a_veil_chat_model_again_is_refused() -> None:
    from veil_langchain import VeilChatModel

    veil = Veil(engine=RULES)
    model = VeilChatModel(model=RecordingChatModel(respond=agent_policy), veil=veil)
    agent = create_agent(model, [], middleware=[VeilMiddleware(veil=veil)])
    with pytest.raises(ConfigError, match="not a VeilChatModel"):
        agent.invoke(ask())


@pytest.mark.filterwarnings("ignore:The v3 streaming protocol")
@pytest.mark.parametrize("mode", MODES)
def test_the_v3_event_stream_shows_restored_deltas(mode: str) -> None:
    """LangGraph's content-block protocol (`stream_events(version="v3")`, experimental)."""
    setup = Setup(mode, chunk_size=2)
    events = list(setup.agent.stream_events(ask(), thread("t1"), version="v3"))
    deltas = [
        event["params"]["data"][0]["delta"]
        for event in events
        if event.get("method") == "messages" and event["params"]["data"][0].get("event") == "content-block-delta"
    ]
    text = "".join(delta.get("text", "") for delta in deltas)
    assert ANSWER in text
    assert not re.search(r"\{\{|EMAIL_|PHONE_", repr(deltas))
    assert_model_saw_no_value(setup.model)


@pytest.mark.parametrize("mode", MODES)
async def test_astream_events_shows_restored_model_chunks(mode: str) -> None:
    setup = Setup(mode, chunk_size=2)
    chunks = [
        event["data"]["chunk"]
        async for event in setup.agent.astream_events(ask(), thread("t1"), version="v2")
        if event["event"] == "on_chat_model_stream"
    ]
    assert "".join(chunk.text for chunk in chunks).endswith(ANSWER)
    assert_stream_restored(chunks)
    assert_model_saw_no_value(setup.model)


def test_messages_an_inner_middleware_adds_are_anonymized_too() -> None:
    profile = "Profile: jean.roy@exemple.ca, +1 418 555 0199"

    @wrap_model_call  # type: ignore[arg-type]
    def add_profile(request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]) -> Any:
        return handler(request.override(messages=[HumanMessage(profile), *request.messages]))

    setup = Setup("restored")
    agent = create_agent(setup.model, setup.directory.tools(), middleware=[setup.middleware, add_profile],
                         checkpointer=setup.saver)  # fmt: skip
    result = agent.invoke(ask(), thread("t1"))
    assert result["messages"][-1].text == ANSWER
    assert_model_saw_no_value(setup.model, "jean.roy@exemple.ca", "+1 418 555 0199")
    assert setup.model.received[0][0].text.startswith("Profile: {{EMAIL_")


def test_a_reviewer_approves_tool_calls_with_values_in_the_restored_mode() -> None:
    """Human-in-the-loop: the reviewer sees the call as the tool will run it, the model never does."""
    setup = Setup("restored")
    review = HumanInTheLoopMiddleware(interrupt_on={"send_message": True})
    agent = create_agent(setup.model, setup.directory.tools(), middleware=[review, setup.middleware],
                         checkpointer=setup.saver)  # fmt: skip
    paused = agent.invoke(ask(), thread("t1"), version="v2")
    (request,) = paused.interrupts
    assert PHONE in repr(request.value) and "{{" not in repr(request.value)
    assert setup.directory.sent == []
    result = agent.invoke(Command(resume={"decisions": [{"type": "approve"}]}), thread("t1"), version="v2")
    assert setup.directory.sent == [(PHONE, "Your order has shipped.")]
    assert result.value["messages"][-1].text == ANSWER
    assert_model_saw_no_value(setup.model)


def test_a_summarizing_middleware_given_a_veil_chat_model_sends_no_value() -> None:
    """Middleware that calls a model of its own (summarization) must be handed a VeilChatModel."""
    setup = Setup("restored")
    summarizer_upstream = RecordingChatModel()  # echoes: the summary repeats what it was given
    summarizer = VeilChatModel(model=summarizer_upstream, veil=setup.veil)
    summarize = SummarizationMiddleware(model=summarizer, trigger=("messages", 4), keep=("messages", 2))
    agent = create_agent(setup.model, setup.directory.tools(), middleware=[summarize, setup.middleware],
                         checkpointer=setup.saver)  # fmt: skip
    agent.invoke(ask(), thread("t1"))
    agent.invoke({"messages": [HumanMessage(f"And once more for {EMAIL}.")]}, thread("t1"))
    assert summarizer_upstream.received, "the summarizer never ran"
    assert_model_saw_no_value(summarizer_upstream)
    assert_model_saw_no_value(setup.model)
    assert setup.directory.lookups == [EMAIL, EMAIL]


def test_a_tenant_callable_files_each_run_under_its_tenant() -> None:
    setup = Setup("anonymized", tenant=lambda config: config["configurable"]["tenant"])
    acme = {"configurable": {"thread_id": "a1", "tenant": "acme"}}
    result = setup.agent.invoke(ask(), acme)
    assert setup.middleware.restore(result, acme)["messages"][-1].text == ANSWER
    assert set(setup.veil.session("thread:a1", tenant="acme").mapping().values()) == {EMAIL, PHONE, SYSTEM_EMAIL}
    assert setup.veil.session("thread:a1").mapping() == {}  # nothing under the default tenant
    with pytest.raises(TokenNotFound):  # another tenant cannot restore acme's tokens
        setup.middleware.restore(result, {"configurable": {"thread_id": "a1", "tenant": "globex"}})
    with pytest.raises(ConfigError, match="tenant callable"):
        VeilMiddleware(tenant=lambda config: "").tenant_for({})


def test_a_configurable_model_is_refused_before_any_call() -> None:
    from langchain.chat_models import init_chat_model

    agent = create_agent(init_chat_model(configurable_fields="any"), [], middleware=[VeilMiddleware()])
    with pytest.raises(ConfigError, match="concrete chat model"):
        agent.invoke(ask())


def test_surrogate_style_gives_the_model_realistic_fakes_and_the_tools_values() -> None:
    def policy(messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, HumanMessage):
            email = re.search(r"\S+@\S+", last.text).group(0)  # type: ignore[union-attr]
            return AIMessage("", tool_calls=[{"name": "lookup_customer", "args": {"email": email}, "id": "c1"}])
        return AIMessage(f"Done: {last.text}")

    veil = Veil(engine=RULES, style="surrogate")
    setup = Setup("restored", veil=veil)
    model = RecordingChatModel(respond=policy)
    agent = create_agent(model, setup.directory.tools(), middleware=[setup.middleware], checkpointer=setup.saver)
    result = agent.invoke({"messages": [HumanMessage(f"Please tell {EMAIL} hi")]}, thread("t1"))
    assert setup.directory.lookups == [EMAIL]
    assert result["messages"][-1].text == f"Done: Customer {EMAIL}, phone {PHONE}, plan Gold"
    assert "{{" not in model.seen_text() and "@" in model.received[0][-1].text
    assert_model_saw_no_value(model)
