"""VeilDocumentAnonymizer (collection-consistent tokens) and VeilDocumentFilter (drop or redact)."""

from __future__ import annotations

import pytest
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.components.writers import DocumentWriter
from haystack.dataclasses import ByteStream
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack_helpers import CARD, EMAIL, PHONE, RULES_ONLY, SIN, assert_no_canary
from veil_haystack import VeilConfig, VeilDocumentAnonymizer, VeilDocumentFilter, VeilRestorer, VeilTextAnonymizer

import veil

DOCUMENTS = [
    Document(content=f"Dossier 1 : la cliente {EMAIL} a changé de carte ({CARD}).", meta={"author": EMAIL, "n": 1}),
    Document(content=f"Dossier 2 : rappeler {EMAIL} au {PHONE}.", meta={"author": "agent-7", "tags": [SIN]}),
    Document(content="Dossier 3 : procédure générale de remboursement.", meta={"author": "agent-9"}),
]


def test_a_value_gets_the_same_token_in_every_document_and_every_run(config: VeilConfig) -> None:
    anonymizer = VeilDocumentAnonymizer(config=config, scope="kb")
    first = anonymizer.run(documents=DOCUMENTS[:1])["documents"][0]
    second = anonymizer.run(documents=DOCUMENTS[1:2])["documents"][0]
    assert first.content == "Dossier 1 : la cliente {{EMAIL_1}} a changé de carte ({{CREDIT_CARD_1}})."
    assert second.content == "Dossier 2 : rappeler {{EMAIL_1}} au {{PHONE_1}}."


def test_chosen_meta_fields_are_anonymized_and_the_others_kept(config: VeilConfig) -> None:
    out = VeilDocumentAnonymizer(config=config, scope="kb", meta_fields=["author", "tags"]).run(documents=DOCUMENTS)
    documents = out["documents"]
    assert documents[0].meta == {"author": "{{EMAIL_1}}", "n": 1}
    assert documents[1].meta == {"author": "agent-7", "tags": ["{{CA_SIN_1}}"]}
    assert documents[2].meta == {"author": "agent-9"} and documents[2].content == DOCUMENTS[2].content
    assert out["pii_count"] == 6 and out["scope"] == "kb"
    assert_no_canary([d.content for d in documents] + [d.meta for d in documents])


def test_derived_ids_are_derived_again_and_ids_set_by_the_user_are_kept(config: VeilConfig) -> None:
    """A derived id is a hash of the values: it would let a store owner test guesses."""
    mine = Document(id="ticket-7", content=f"NAS {SIN}")
    derived, kept = VeilDocumentAnonymizer(config=config, scope="kb").run(documents=[DOCUMENTS[0], mine])["documents"]
    assert derived.id != DOCUMENTS[0].id
    assert derived.id == Document(content=derived.content, meta=derived.meta).id
    assert kept.id == "ticket-7"


def test_documents_already_embedded_or_binary_are_refused(config: VeilConfig) -> None:
    anonymizer = VeilDocumentAnonymizer(config=config, scope="kb")
    with pytest.raises(veil.InputError, match="before the embedder"):
        anonymizer.run(documents=[Document(content=EMAIL, embedding=[0.1, 0.2])])
    with pytest.raises(veil.InputError, match="binary"):
        anonymizer.run(documents=[Document(blob=ByteStream(data=b"%PDF"))])


def test_document_anonymizer_needs_a_scope(config: VeilConfig) -> None:
    with pytest.raises(veil.ConfigError, match="needs a scope"):
        VeilDocumentAnonymizer(config=config).run(documents=DOCUMENTS)


def test_queries_in_the_collection_scope_find_anonymized_documents_by_keyword(config: VeilConfig) -> None:
    store = InMemoryDocumentStore()
    indexing = Pipeline()
    indexing.add_component(
        "anonymizer", VeilDocumentAnonymizer(config=config, scope="kb", meta_fields=["author", "tags"])
    )
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("anonymizer.documents", "writer.documents")
    indexing.run({"anonymizer": {"documents": DOCUMENTS}})
    stored = store.filter_documents()
    assert len(stored) == 3
    assert_no_canary([d.content for d in stored] + [d.meta for d in stored] + [d.id for d in stored])

    query = Pipeline()
    query.add_component("anonymizer", VeilTextAnonymizer(config=config, scope="kb"))
    query.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=1))
    query.connect("anonymizer.text", "retriever.query")
    found = query.run({"anonymizer": {"text": f"Qui a le numéro {PHONE} ?"}})["retriever"]["documents"]
    assert found[0].content == "Dossier 2 : rappeler {{EMAIL_1}} au {{PHONE_1}}."
    restored = VeilRestorer(config=config, scope="kb").run(text=found[0].content)["text"]
    assert restored == DOCUMENTS[1].content


def test_filter_drops_documents_above_the_threshold(config: VeilConfig) -> None:
    out = VeilDocumentFilter(config=config, max_pii=1).run(documents=DOCUMENTS)
    assert [d.content for d in out["documents"]] == [DOCUMENTS[2].content]
    assert out["dropped"] == DOCUMENTS[:2]
    lenient = VeilDocumentFilter(config=config, max_pii=2).run(documents=DOCUMENTS)
    assert len(lenient["documents"]) == 3 and lenient["dropped"] == []


def test_filter_redacts_irreversibly_content_and_chosen_meta(config: VeilConfig) -> None:
    out = VeilDocumentFilter(config=config, action="redact", meta_fields=["author", "tags"]).run(documents=DOCUMENTS)
    documents = out["documents"]
    assert out["dropped"] == []
    assert documents[0].content == "Dossier 1 : la cliente [EMAIL] a changé de carte ([CREDIT_CARD])."
    assert documents[0].meta == {"author": "[EMAIL]", "n": 1}
    assert documents[1].meta["tags"] == ["[CA_SIN]"]
    assert documents[2] == DOCUMENTS[2]
    assert_no_canary([d.content for d in documents] + [d.meta for d in documents])


def test_filter_follows_the_policy_of_its_config() -> None:
    config = VeilConfig(tenant="filter-policy", policy={"exclude": ["EMAIL"], **RULES_ONLY})
    out = VeilDocumentFilter(config=config).run(documents=[Document(content=f"à {EMAIL}")])
    assert out["dropped"] == []


def test_filter_settings_are_checked() -> None:
    with pytest.raises(veil.ConfigError, match="action"):
        VeilDocumentFilter(action="shred")  # type: ignore[arg-type]
    with pytest.raises(veil.ConfigError, match="max_pii"):
        VeilDocumentFilter(max_pii=-1)
