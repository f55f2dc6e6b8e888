"""VeilAnonymizer, VeilRestorer and RunnableVeil: the mapping lives in the run's scope, never in a global."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_fakes import RecordingChatModel
from veil_langchain import RunnableVeil, VeilAnonymizer, VeilRestorer

from veil import ConfigError, Engine, TokenNotFound, Veil
from veil.detect import BUILTIN_RULES, RuleDetector

EMAIL = "marie.tremblay@exemple.qc.ca"
CARD = "4111 1111 1111 1111"
RULES = Engine(detectors=[RuleDetector(BUILTIN_RULES)])
PROMPT = ChatPromptTemplate.from_messages([("system", "You help support agents."), ("human", "{question}")])


def scoped(scope: str) -> dict:
    return {"configurable": {"veil_scope": scope}}


def test_anonymizer_and_restorer_share_the_mapping_through_the_run_scope() -> None:
    veil = Veil(engine=RULES)
    upstream = RecordingChatModel()
    chain = VeilAnonymizer(veil=veil) | PROMPT | upstream | StrOutputParser() | VeilRestorer(veil=veil)
    answer = chain.invoke({"question": f"Card {CARD} of {EMAIL}?"}, config=scoped("ticket-1"))
    assert answer == f"You said: Card {CARD} of {EMAIL}?"
    assert upstream.received[0][1].content == "Card {{CREDIT_CARD_1}} of {{EMAIL_1}}?"
    assert veil.session("ticket-1").mapping() == {"{{CREDIT_CARD_1}}": CARD, "{{EMAIL_1}}": EMAIL}


def test_anonymizer_without_a_scope_refuses_rather_than_use_a_shared_mapping() -> None:
    with pytest.raises(ConfigError, match="veil_scope"):
        VeilAnonymizer(veil=Veil(engine=RULES)).invoke(f"mail {EMAIL}")


async def test_concurrent_runs_on_different_scopes_restore_their_own_values() -> None:
    veil = Veil(engine=RULES)
    chain = VeilAnonymizer(veil=veil) | PROMPT | RecordingChatModel() | StrOutputParser() | VeilRestorer(veil=veil)
    emails = [f"agent{n}@exemple.qc.ca" for n in range(20)]
    answers = await chain.abatch([{"question": e} for e in emails], config=[scoped(f"run-{n}") for n in range(20)])
    assert answers == [f"You said: {e}" for e in emails]
    with pytest.raises(TokenNotFound):  # another run's scope cannot read this one's token
        VeilRestorer(veil=veil).invoke("{{EMAIL_1}}", config=scoped("never-used"))


def test_restorer_streams_without_half_tokens() -> None:
    veil = Veil(engine=RULES)
    chain = VeilAnonymizer(veil=veil) | PROMPT | RecordingChatModel(chunk_size=2) | StrOutputParser()
    chain = chain | VeilRestorer(veil=veil)
    pieces = list(chain.stream({"question": f"mail {EMAIL}"}, config=scoped("s")))
    assert "".join(pieces) == f"You said: mail {EMAIL}"
    assert all("{" not in piece for piece in pieces) and len(pieces) > 3


def test_runnable_veil_wraps_a_chain_with_a_mapping_of_its_own_per_run() -> None:
    veil = Veil(engine=RULES)
    upstream = RecordingChatModel(chunk_size=3)
    safe = RunnableVeil(runnable=PROMPT | upstream | StrOutputParser(), veil=veil)
    assert safe.invoke({"question": f"mail {EMAIL}"}) == f"You said: mail {EMAIL}"
    pieces = list(safe.stream({"question": f"mail {EMAIL}"}))
    assert "".join(pieces) == f"You said: mail {EMAIL}"
    assert all("{" not in piece for piece in pieces)
    assert EMAIL not in upstream.seen_text()
    erased = [r for r in veil.audit.store.records() if r.event == "erase"]
    assert len(erased) == 2 and all(veil.vault.records(veil.tenant, r.details["scope"]) == [] for r in erased)


async def test_runnable_veil_async_and_message_outputs() -> None:
    veil = Veil(engine=RULES)
    safe = RunnableVeil(runnable=RecordingChatModel(chunk_size=2), veil=veil)
    answer = await safe.ainvoke([HumanMessage(f"mail {EMAIL}")])
    assert isinstance(answer, AIMessage) and answer.content == f"You said: mail {EMAIL}"
    chunks = [chunk async for chunk in safe.astream([HumanMessage(f"mail {EMAIL}")])]
    assert "".join(chunk.text for chunk in chunks) == f"You said: mail {EMAIL}"
    assert all("{" not in chunk.text for chunk in chunks)


def test_runnable_veil_anonymizes_documents_and_restores_them() -> None:
    seen: list = []

    def inner(docs: list[Document]) -> list[Document]:
        seen.extend(docs)
        return docs

    safe = RunnableVeil(runnable=RunnableLambda(inner), veil=Veil(engine=RULES))
    out = safe.invoke([Document(page_content=f"client {EMAIL}", metadata={"owner": EMAIL})])
    assert seen[0].page_content == "client {{EMAIL_1}}" and seen[0].metadata == {"owner": "{{EMAIL_1}}"}
    assert out[0].page_content == f"client {EMAIL}" and out[0].metadata == {"owner": EMAIL}


def test_runnable_veil_refuses_inputs_it_cannot_walk() -> None:
    class Ticket:
        body = f"mail {EMAIL}"

    called: list = []
    safe = RunnableVeil(runnable=RunnableLambda(lambda x: called.append(x) or x), veil=Veil(engine=RULES))
    with pytest.raises(ConfigError, match="Ticket"):
        safe.invoke(Ticket())
    assert called == []


def test_config_specs_advertise_the_scope() -> None:
    safe = RunnableVeil(runnable=RunnableLambda(lambda x: x), veil=Veil(engine=RULES))
    assert "veil_scope" in {spec.id for spec in safe.config_specs}


def test_parallel_threads_with_scopes_never_mix() -> None:
    veil = Veil(engine=RULES)
    chain = VeilAnonymizer(veil=veil) | PROMPT | RecordingChatModel() | StrOutputParser() | VeilRestorer(veil=veil)
    emails = [f"user{n}@exemple.qc.ca" for n in range(30)]
    answers = chain.batch([{"question": e} for e in emails], config=[scoped(f"t-{n}") for n in range(30)])
    assert answers == [f"You said: {e}" for e in emails]
