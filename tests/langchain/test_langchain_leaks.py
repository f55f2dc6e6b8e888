"""Leak test: canary personal data goes through every path of the adapter, and the recording
upstream model (and embedding model) never receives any of it — invoke, stream, tools,
structured output, retrieval, history with content blocks and partial tool calls."""

from __future__ import annotations

import json
import re

import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.tools import tool
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_fakes import RecordingChatModel, RecordingEmbeddings
from pydantic import BaseModel
from veil_langchain import RunnableVeil, VeilChatModel, VeilDocumentTransformer, VeilEmbeddings, VeilRetriever

from veil import Engine, Veil
from veil.detect import BUILTIN_RULES, RuleDetector

EMAIL = "marie.tremblay@exemple.qc.ca"
PHONE = "+1 514 872 3456"
SIN = "130 692 544"
CARD = "4111 1111 1111 1111"
CANARIES = (EMAIL, PHONE, SIN, CARD)
CANARY_TEXT = f"Client {EMAIL}, tél. {PHONE}, NAS {SIN}, carte {CARD}."
RULES = Engine(detectors=[RuleDetector(BUILTIN_RULES)])


def assert_never_seen(seen: str) -> None:
    for canary in CANARIES:
        assert canary not in seen
        assert canary.lower() not in seen.lower()
    for number in (SIN, CARD, PHONE):
        digits = re.sub(r"\D", "", number).removeprefix("1")
        assert not re.search(r"\D{0,3}".join(digits), seen), number  # whatever the spacing or punctuation


@pytest.fixture
def upstream() -> RecordingChatModel:
    return RecordingChatModel(chunk_size=2)


@pytest.fixture
def llm(upstream: RecordingChatModel) -> VeilChatModel:
    return VeilChatModel(model=upstream, veil=Veil(engine=RULES), scope="leak-test")


def test_invoke_batch_and_history_never_leak(llm: VeilChatModel, upstream: RecordingChatModel) -> None:
    history = [
        SystemMessage(CANARY_TEXT),
        HumanMessage(content=[{"type": "text", "text": CANARY_TEXT}, CANARY_TEXT]),
        AIMessage(content="", tool_calls=[{"name": "f", "args": {"note": CANARY_TEXT, "id": EMAIL}, "id": "1"}],
                  invalid_tool_calls=[{"name": "g", "args": f'{{"x": "{EMAIL}"', "id": "2", "error": None,
                                       "type": "invalid_tool_call"}],
                  additional_kwargs={"function_call": {"name": "f", "arguments": json.dumps({"sin": SIN})},
                                     "reasoning_content": CANARY_TEXT}),
        ToolMessage(content=[{"type": "text", "text": CANARY_TEXT}], tool_call_id="1"),
        AIMessageChunk(content=CANARY_TEXT, tool_call_chunks=[{"name": "f", "args": json.dumps({"card": CARD}),
                                                               "id": "3", "index": 0}]),
        HumanMessage(CANARY_TEXT),
    ]  # fmt: skip
    answer = llm.invoke(history)
    assert answer.content == f"You said: {CANARY_TEXT}"
    llm.batch([CANARY_TEXT, CANARY_TEXT])
    assert_never_seen(upstream.seen_text())


def test_stream_and_astream_never_leak(llm: VeilChatModel, upstream: RecordingChatModel) -> None:
    assert "".join(chunk.text for chunk in llm.stream(CANARY_TEXT)) == f"You said: {CANARY_TEXT}"
    assert_never_seen(upstream.seen_text())


async def test_astream_never_leaks(llm: VeilChatModel, upstream: RecordingChatModel) -> None:
    shown = [chunk.text async for chunk in llm.astream(CANARY_TEXT)]
    assert "".join(shown) == f"You said: {CANARY_TEXT}"
    await llm.ainvoke(CANARY_TEXT)
    assert_never_seen(upstream.seen_text())


def lookup_call(call_id: str) -> dict:
    return {"name": "customer_file", "args": {"email": "{{EMAIL_1}}"}, "id": call_id}


def test_tool_round_trip_never_leaks(llm: VeilChatModel, upstream: RecordingChatModel) -> None:
    @tool
    def customer_file(email: str) -> str:
        """The customer's file."""
        assert email == EMAIL  # the tool gets the real value
        return CANARY_TEXT

    upstream.script.append(AIMessage(content="", tool_calls=[lookup_call("c1")]))
    agent = llm.bind_tools([customer_file])
    messages: list = [HumanMessage(f"File of {EMAIL}?")]
    request = agent.invoke(messages)
    messages += [request, customer_file.invoke(request.tool_calls[0])]
    final = agent.invoke(messages)
    assert CANARY_TEXT in final.text
    upstream.script.append(AIMessage(content="", tool_calls=[lookup_call("c2")]))
    streamed = None
    for chunk in agent.stream(messages):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None and streamed.tool_calls[0]["args"] == {"email": EMAIL}
    assert_never_seen(upstream.seen_text())


class Customer(BaseModel):
    """A customer record."""

    email: str
    sin: str


def test_structured_output_never_leaks(llm: VeilChatModel, upstream: RecordingChatModel) -> None:
    call = {"name": "Customer", "id": "c1", "args": {"email": "{{EMAIL_1}}", "sin": "{{CA_SIN_1}}"}}
    upstream.script.append(AIMessage(content="", tool_calls=[call]))
    customer = llm.with_structured_output(Customer).invoke(CANARY_TEXT)
    assert customer == Customer(email=EMAIL, sin=SIN)
    assert_never_seen(upstream.seen_text())


def test_retrieval_augmented_chain_never_leaks(upstream: RecordingChatModel) -> None:
    veil = Veil(engine=RULES)
    embedder = RecordingEmbeddings()
    store = InMemoryVectorStore(VeilEmbeddings(embeddings=embedder, veil=veil, scope="kb"))
    documents = [Document(page_content=CANARY_TEXT, metadata={"owner": EMAIL}), Document(page_content="Printer jam.")]
    store.add_documents(VeilDocumentTransformer(veil, scope="kb").transform_documents(documents))
    retriever = VeilRetriever(retriever=store.as_retriever(search_kwargs={"k": 2}), veil=veil, scope="kb")
    prompt = ChatPromptTemplate.from_messages([("system", "Context:\n{context}"), ("human", "{question}")])
    llm = VeilChatModel(model=upstream, veil=veil, scope="kb", keep_tokens=True)
    chain = (
        {"context": retriever | (lambda docs: "\n".join(d.page_content for d in docs)),
         "question": RunnablePassthrough()}
        | prompt | llm | StrOutputParser()
    )  # fmt: skip
    answer = chain.invoke(f"What is the SIN of {EMAIL}?")
    assert answer == f"You said: What is the SIN of {EMAIL}?"
    assert "{{CA_SIN_1}}" in upstream.received[0][0].content  # the model got the context, as tokens
    assert_never_seen(upstream.seen_text())
    assert_never_seen("\n".join(embedder.received))
    stored = [{"text": row["text"], "metadata": row["metadata"]} for row in store.store.values()]
    assert_never_seen(json.dumps(stored, ensure_ascii=False))


def test_runnable_veil_never_leaks(upstream: RecordingChatModel) -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "{a} / {b}")])
    safe = RunnableVeil(runnable=prompt | upstream | StrOutputParser(), veil=Veil(engine=RULES))
    assert safe.invoke({"a": CANARY_TEXT, "b": EMAIL}) == f"You said: {CANARY_TEXT} / {EMAIL}"
    assert "".join(safe.stream({"a": CANARY_TEXT, "b": SIN})) == f"You said: {CANARY_TEXT} / {SIN}"
    assert_never_seen(upstream.seen_text())


def test_the_leak_check_itself_catches_a_leak() -> None:
    bare = RecordingChatModel()
    bare.invoke(CANARY_TEXT)  # no veil in front: the canaries arrive
    with pytest.raises(AssertionError):
        assert_never_seen(bare.seen_text())
