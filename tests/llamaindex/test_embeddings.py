"""VeilEmbedding: the embedding model sees anonymized text only, with collection-consistent tokens."""

from __future__ import annotations

import asyncio

import pytest
from veil_llamaindex import VeilEmbedding

from veil import ConfigError, DetectionError, Engine, Veil

from .conftest import CANARIES, RecordingEmbedding, hashed_embedding, leaked
from .test_llm import BrokenDetector

DOCUMENT = f"Dossier: {CANARIES['email']}, NAS {CANARIES['sin']}, carte {CANARIES['card']}."


def test_text_query_and_batch_embeddings_see_tokens_only(veil: Veil, embedder: RecordingEmbedding) -> None:
    model = VeilEmbedding(embed_model=embedder, veil=veil, scope="kb")
    model.get_text_embedding(DOCUMENT)
    model.get_query_embedding(f"Who is {CANARIES['email']}?")
    model.get_text_embedding_batch([DOCUMENT, f"call {CANARIES['phone']}", "no personal data"])
    assert len(embedder.seen) == 5
    assert leaked(embedder.seen) == []
    assert embedder.seen[0] == "Dossier: {{EMAIL_1}}, NAS {{CA_SIN_1}}, carte {{CREDIT_CARD_1}}."
    assert embedder.seen[1] == "Who is {{EMAIL_1}}?"


def test_async_text_query_and_batch_embeddings_see_tokens_only(veil: Veil, embedder: RecordingEmbedding) -> None:
    model = VeilEmbedding(embed_model=embedder, veil=veil, scope="kb")

    async def run() -> None:
        await model.aget_text_embedding(DOCUMENT)
        await model.aget_query_embedding(f"Who is {CANARIES['email']}?")
        await model.aget_text_embedding_batch([DOCUMENT, f"call {CANARIES['phone']}"])

    asyncio.run(run())
    assert len(embedder.seen) == 4
    assert leaked(embedder.seen) == []


def test_a_query_embeds_exactly_like_the_document_text_that_holds_the_same_value(
    veil: Veil, embedder: RecordingEmbedding
) -> None:
    model = VeilEmbedding(embed_model=embedder, veil=veil, scope="kb")
    stored = model.get_text_embedding(f"{CANARIES['email']}")
    query = model.get_query_embedding(f"  {CANARIES['email'].upper()} ")  # another spelling of the same value
    assert stored == query == hashed_embedding("{{EMAIL_1}}")


def test_already_anonymized_text_of_the_scope_embeds_unchanged(veil: Veil, embedder: RecordingEmbedding) -> None:
    stored = veil.session("kb").anonymize(DOCUMENT).text
    VeilEmbedding(embed_model=embedder, veil=veil, scope="kb").get_text_embedding(stored)
    assert embedder.seen == [stored]


def test_scopes_are_separate_collections(veil: Veil, embedder: RecordingEmbedding) -> None:
    VeilEmbedding(embed_model=embedder, veil=veil, scope="kb-a").get_text_embedding("a@exemple.ca")
    VeilEmbedding(embed_model=embedder, veil=veil, scope="kb-b").get_text_embedding("b@exemple.ca")
    assert embedder.seen == ["{{EMAIL_1}}", "{{EMAIL_1}}"]
    assert veil.session("kb-a").restore("{{EMAIL_1}}") == "a@exemple.ca"
    assert veil.session("kb-b").restore("{{EMAIL_1}}") == "b@exemple.ca"


def test_model_name_and_batch_size_are_the_wrapped_models(veil: Veil) -> None:
    inner = RecordingEmbedding(embed_batch_size=7)
    model = VeilEmbedding(embed_model=inner, veil=veil, scope="kb")
    assert (model.model_name, model.embed_batch_size) == ("recording-embedding", 7)
    assert VeilEmbedding.class_name() == "VeilEmbedding"


def test_a_failing_detector_embeds_nothing(embedder: RecordingEmbedding) -> None:
    model = VeilEmbedding(embed_model=embedder, veil=Veil(engine=Engine(detectors=[BrokenDetector()])), scope="kb")
    with pytest.raises(DetectionError):
        model.get_text_embedding_batch([DOCUMENT])
    with pytest.raises(DetectionError):
        asyncio.run(model.aget_query_embedding(DOCUMENT))
    assert embedder.seen == []


def test_a_cache_keyed_by_raw_text_is_refused(veil: Veil, embedder: RecordingEmbedding) -> None:
    from llama_index.core.storage.kvstore import SimpleKVStore

    with pytest.raises(ConfigError, match="embeddings_cache"):
        VeilEmbedding(embed_model=embedder, veil=veil, scope="kb", embeddings_cache=SimpleKVStore())
