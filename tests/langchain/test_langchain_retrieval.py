"""VeilEmbeddings, VeilDocumentTransformer and VeilRetriever over a real InMemoryVectorStore."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_fakes import RecordingEmbeddings
from veil_langchain import VeilDocumentTransformer, VeilEmbeddings, VeilRetriever

from veil import ConfigError, Engine, Veil
from veil.detect import BUILTIN_RULES, RuleDetector

EMAIL = "marie.tremblay@exemple.qc.ca"
SIN = "130 692 544"
CARD = "4111 1111 1111 1111"
PHONE = "+1 514 872 3456"
RULES = Engine(detectors=[RuleDetector(BUILTIN_RULES)])

DOCUMENTS = [
    Document(page_content=f"Ticket 1: {EMAIL} asks about her invoice.", metadata={"author": EMAIL, "id": "t1"}),
    Document(page_content="Ticket 2: the printer on floor 3 is jammed.", metadata={"id": "t2"}),
    Document(page_content=f"Ticket 3: {EMAIL}, SIN {SIN}, card {CARD}, phone {PHONE}.", metadata={"id": "t3"}),
]


def test_documents_and_queries_get_the_same_tokens_and_the_model_sees_none() -> None:
    upstream = RecordingEmbeddings()
    embeddings = VeilEmbeddings(embeddings=upstream, veil=Veil(engine=RULES), scope="kb")
    vectors = embeddings.embed_documents([f"contact {EMAIL}", f"SIN {SIN}"])
    query = embeddings.embed_query(f"who is {EMAIL.upper()}?")
    assert upstream.received == ["contact {{EMAIL_1}}", "SIN {{CA_SIN_1}}", "who is {{EMAIL_1}}?"]
    assert len(vectors) == 2 and len(query) == upstream.size


async def test_async_embeddings_anonymize_too() -> None:
    upstream = RecordingEmbeddings()
    embeddings = VeilEmbeddings(embeddings=upstream, veil=Veil(engine=RULES), scope="kb")
    await embeddings.aembed_documents([f"contact {EMAIL}"])
    await embeddings.aembed_query(f"{EMAIL}?")
    assert upstream.received == ["contact {{EMAIL_1}}", "{{EMAIL_1}}?"]


def test_stored_documents_keep_their_tokens_when_embedded() -> None:
    veil = Veil(engine=RULES)
    stored = VeilDocumentTransformer(veil, scope="kb").transform_documents(DOCUMENTS[:1])
    upstream = RecordingEmbeddings()
    VeilEmbeddings(embeddings=upstream, veil=veil, scope="kb").embed_documents([stored[0].page_content])
    assert upstream.received == ["Ticket 1: {{EMAIL_1}} asks about her invoice."]


def test_transformer_anonymizes_below_the_threshold_and_drops_above() -> None:
    veil = Veil(engine=RULES)
    out = VeilDocumentTransformer(veil, scope="kb", max_pii=2).transform_documents(DOCUMENTS)
    assert [d.metadata["id"] for d in out] == ["t1", "t2"]
    assert out[0].page_content == "Ticket 1: {{EMAIL_1}} asks about her invoice."
    assert out[0].metadata["author"] == "{{EMAIL_1}}"
    assert out[0].metadata["veil"] == {"action": "anonymized", "pii_count": 1}
    assert out[1].metadata["veil"] == {"action": "anonymized", "pii_count": 0}
    # The dropped document's values never reached the vault.
    assert set(veil.session("kb").mapping().values()) == {EMAIL}


def test_transformer_redacts_above_the_threshold_irreversibly() -> None:
    veil = Veil(engine=RULES)
    transformer = VeilDocumentTransformer(veil, scope="kb", max_pii=2, over_limit="redact")
    stored = transformer.transform_documents(DOCUMENTS[:1])  # {{EMAIL_1}} now exists in kb
    held = Document(page_content=f"{stored[0].page_content} SIN {SIN}, card {CARD}", metadata={"by": EMAIL})
    out = transformer.transform_documents([held])
    assert out[0].page_content == "Ticket 1: [EMAIL] asks about her invoice. SIN [CA_SIN], card [CREDIT_CARD]"
    assert out[0].metadata == {"by": "[EMAIL]", "veil": {"action": "redacted", "pii_count": 3}}


def test_transformer_refuses_unknown_options() -> None:
    with pytest.raises(ConfigError):
        VeilDocumentTransformer(Veil(engine=RULES), scope="kb", over_limit="hide")  # type: ignore[arg-type]


def build_store(veil: Veil) -> tuple[InMemoryVectorStore, RecordingEmbeddings]:
    upstream = RecordingEmbeddings()
    store = InMemoryVectorStore(VeilEmbeddings(embeddings=upstream, veil=veil, scope="kb"))
    store.add_documents(VeilDocumentTransformer(veil, scope="kb").transform_documents(DOCUMENTS))
    return store, upstream


def test_retriever_gives_the_model_path_tokens_and_allowed_callers_values() -> None:
    veil = Veil(engine=RULES)
    store, upstream = build_store(veil)
    retriever = VeilRetriever(retriever=store.as_retriever(search_kwargs={"k": 3}), veil=veil, scope="kb",
                              max_pii=2, reveal_to=frozenset({"support-admin"}))  # fmt: skip
    for_model = retriever.invoke(f"invoice of {EMAIL}")
    assert {d.metadata["id"] for d in for_model} == {"t1", "t2"}  # t3 is above the threshold
    assert all(EMAIL not in d.page_content for d in for_model)
    assert any("{{EMAIL_1}}" in d.page_content for d in for_model)
    for_admin = retriever.invoke(f"invoice of {EMAIL}", config={"configurable": {"veil_scope": "support-admin"}})
    assert {d.metadata["id"] for d in for_admin} == {"t1", "t2", "t3"}
    assert any(f"SIN {SIN}" in d.page_content for d in for_admin)
    other = retriever.invoke(f"invoice of {EMAIL}", config={"configurable": {"veil_scope": "agent-7"}})
    assert all(SIN not in d.page_content and EMAIL not in d.page_content for d in other)
    assert not any(value in text for text in upstream.received for value in (EMAIL, SIN, CARD, PHONE))


async def test_retriever_async_path_filters_the_same_way() -> None:
    veil = Veil(engine=RULES)
    store, _ = build_store(veil)
    retriever = VeilRetriever(retriever=store.as_retriever(search_kwargs={"k": 3}), veil=veil, scope="kb", max_pii=2)
    docs = await retriever.ainvoke(f"invoice of {EMAIL}")
    assert {d.metadata["id"] for d in docs} == {"t1", "t2"}


def test_retriever_anonymizes_raw_documents_from_a_plain_store() -> None:
    veil = Veil(engine=RULES)
    raw = InMemoryVectorStore(RecordingEmbeddings())
    raw.add_documents(DOCUMENTS)
    retriever = VeilRetriever(retriever=raw.as_retriever(search_kwargs={"k": 3}), veil=veil, scope="kb",
                              max_pii=10)  # fmt: skip
    docs = retriever.invoke("tickets")
    assert len(docs) == 3
    assert not any(value in d.page_content for d in docs for value in (EMAIL, SIN, CARD, PHONE))
