"""VeilTransform at ingestion, VeilPIIPostprocessor after retrieval, and the whole RAG path together."""

from __future__ import annotations

import json

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.schema import ImageNode, NodeRelationship, NodeWithScore, RelatedNodeInfo, TextNode
from veil_llamaindex import VeilEmbedding, VeilLLM, VeilPIIPostprocessor, VeilTransform

from veil import ConfigError, DetectionError, Engine, InputError, Veil

from .conftest import CANARIES, RecordingEmbedding, RecordingLLM, leaked, rules_engine, splitter
from .test_llm import BrokenDetector

DOCUMENTS = [
    Document(
        text=f"Jeanne Roy's file. E-mail {CANARIES['email']}, phone {CANARIES['phone']}. Prefers e-mail.",
        metadata={"owner": CANARIES["email"], "type": f"SIN {CANARIES['sin']}", "pages": 2},
    ),
    Document(text=f"Billing: card {CANARIES['card']} was charged twice in March.", metadata={"owner": "billing"}),
    Document(text="Office hours are 9 to 5, Monday to Friday.", metadata={"owner": "front desk"}),
]


def dump(storage: StorageContext, tmp_path: object) -> str:
    from pathlib import Path

    folder = Path(str(tmp_path)) / "storage"
    storage.persist(persist_dir=str(folder))
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.json")))


# -- VeilTransform ---------------------------------------------------------------------------------


def test_transform_anonymizes_text_metadata_and_relationship_metadata(veil: Veil) -> None:
    nodes = splitter()(DOCUMENTS)
    out = VeilTransform(veil=veil, scope="kb")(nodes)
    everything = json.dumps([node.to_dict() for node in out])
    assert leaked([everything]) == []
    assert "{{EMAIL_1}}" in out[0].get_content() and out[0].metadata["owner"] == "{{EMAIL_1}}"
    assert out[0].metadata["type"] == "SIN {{CA_SIN_1}}" and out[0].metadata["pages"] == 2
    source = out[0].relationships[NodeRelationship.SOURCE]
    assert isinstance(source, RelatedNodeInfo) and source.metadata["owner"] == "{{EMAIL_1}}"
    assert CANARIES["email"] in nodes[0].get_content()  # the input nodes are left as they were


def test_transform_tokens_are_consistent_across_nodes_and_calls(veil: Veil) -> None:
    transform = VeilTransform(veil=veil, scope="kb")
    first = transform([TextNode(text=f"a {CANARIES['email']}")])
    second = transform([TextNode(text=f"b {CANARIES['phone']} and {CANARIES['email']}")])
    assert first[0].get_content() == "a {{EMAIL_1}}"
    assert second[0].get_content() == "b {{PHONE_1}} and {{EMAIL_1}}"
    assert transform(second)[0].get_content() == second[0].get_content()  # idempotent


def test_transform_anonymizes_only_the_chosen_metadata_keys(veil: Veil) -> None:
    node = TextNode(text="x", metadata={"owner": CANARIES["email"], "source_url": "https://exemple.ca/a@b.ca"})
    out = VeilTransform(veil=veil, scope="kb", metadata_keys=["owner"])([node])[0]
    assert out.metadata == {"owner": "{{EMAIL_1}}", "source_url": "https://exemple.ca/a@b.ca"}


def test_transform_refuses_media_it_cannot_scan(veil: Veil) -> None:
    with pytest.raises(InputError, match="media"):
        VeilTransform(veil=veil, scope="kb")([ImageNode(text="scan", image="aGVsbG8=")])
    assert VeilTransform(veil=veil, scope="kb", allow_media=True)([ImageNode(text="scan", image="aGVsbG8=")])


def test_transform_fails_closed_and_needs_a_scope(veil: Veil) -> None:
    broken = VeilTransform(veil=Veil(engine=Engine(detectors=[BrokenDetector()])), scope="kb")
    with pytest.raises(DetectionError):
        broken(DOCUMENTS)
    with pytest.raises(ConfigError):
        VeilTransform(veil=veil, scope="")
    assert VeilTransform.class_name() == "VeilTransform"


def test_ingestion_pipeline_stores_no_personal_value(veil: Veil, embedder: RecordingEmbedding) -> None:
    pipeline = IngestionPipeline(
        transformations=[
            VeilTransform(veil=veil, scope="kb"),  # before splitting: a value is never cut in two first
            splitter(),
            VeilEmbedding(embed_model=embedder, veil=veil, scope="kb"),
        ]
    )
    nodes = pipeline.run(documents=DOCUMENTS)
    assert all(node.embedding is not None for node in nodes)
    assert leaked([json.dumps([node.to_dict() for node in nodes])]) == []
    assert leaked(embedder.seen) == []


def test_async_ingestion_pipeline_stores_no_personal_value(veil: Veil, embedder: RecordingEmbedding) -> None:
    import asyncio

    pipeline = IngestionPipeline(
        transformations=[
            VeilTransform(veil=veil, scope="kb"),
            VeilEmbedding(embed_model=embedder, veil=veil, scope="kb"),
        ]
    )
    nodes = asyncio.run(pipeline.arun(documents=DOCUMENTS))
    assert leaked([json.dumps([node.to_dict() for node in nodes])]) == [] and leaked(embedder.seen) == []


# -- VeilPIIPostprocessor ----------------------------------------------------------------------------


def retrieved() -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(text=f"Mail {CANARIES['email']}", metadata={"owner": CANARIES["email"]}), score=0.9
        ),
        NodeWithScore(node=TextNode(text=f"SIN {CANARIES['sin']}, card {CANARIES['card']}"), score=0.8),
        NodeWithScore(node=TextNode(text="Office hours are 9 to 5."), score=0.5),
    ]


def test_redact_replaces_values_by_their_type_in_text_and_metadata(veil: Veil) -> None:
    nodes = retrieved()
    out = VeilPIIPostprocessor(mode="redact", veil=veil).postprocess_nodes(nodes)
    assert [n.node.get_content() for n in out] == [
        "Mail [EMAIL]",
        "SIN [CA_SIN], card [CREDIT_CARD]",
        "Office hours are 9 to 5.",
    ]
    assert out[0].node.metadata == {"owner": "[EMAIL]"} and [n.score for n in out] == [0.9, 0.8, 0.5]
    assert CANARIES["email"] in nodes[0].node.get_content()  # inputs untouched


def test_tokenize_then_restore_round_trips_in_the_collection_scope(veil: Veil) -> None:
    tokenized = VeilPIIPostprocessor(mode="tokenize", veil=veil, scope="kb").postprocess_nodes(retrieved())
    assert (
        tokenized[0].node.get_content() == "Mail {{EMAIL_1}}" and tokenized[0].node.metadata["owner"] == "{{EMAIL_1}}"
    )
    assert leaked([n.node.get_content() for n in tokenized]) == []
    restored = VeilPIIPostprocessor(mode="restore", veil=veil, scope="kb").postprocess_nodes(tokenized)
    assert [n.node.get_content() for n in restored] == [n.node.get_content() for n in retrieved()]


def test_restore_of_a_token_from_another_collection_raises_unless_lenient(veil: Veil) -> None:
    from veil import TokenNotFound

    tokenized = VeilPIIPostprocessor(mode="tokenize", veil=veil, scope="kb").postprocess_nodes(retrieved())
    with pytest.raises(TokenNotFound):
        VeilPIIPostprocessor(mode="restore", veil=veil, scope="other").postprocess_nodes(tokenized)
    lenient = VeilPIIPostprocessor(mode="restore", veil=veil, scope="other", lenient_restore=True)
    assert lenient.postprocess_nodes(tokenized)[0].node.get_content() == "Mail {{EMAIL_1}}"


@pytest.mark.parametrize(("max_pii", "kept"), [(0, 1), (1, 1), (2, 3), (5, 3)])
def test_drop_leaves_out_nodes_with_more_personal_values_than_the_threshold(
    veil: Veil, max_pii: int, kept: int
) -> None:
    # node 0 holds 2 values (text and metadata), node 1 holds 2, node 2 none
    out = VeilPIIPostprocessor(mode="drop", max_pii=max_pii, veil=veil).postprocess_nodes(retrieved())
    assert len(out) == kept


def test_the_engine_is_built_once_and_shared_by_every_call(veil: Veil) -> None:
    postprocessor = VeilPIIPostprocessor(mode="redact", veil=veil)
    engine = postprocessor.veil.engine
    for _ in range(3):
        postprocessor.postprocess_nodes(retrieved())
    assert postprocessor.veil.engine is engine is veil.engine


def test_french_text_is_handled_by_the_same_engine(veil: Veil) -> None:
    node = NodeWithScore(node=TextNode(text=f"Le NAS du client est {CANARIES['sin']}, courriel {CANARIES['email']}."))
    out = VeilPIIPostprocessor(mode="redact", veil=veil, language="fr").postprocess_nodes([node])
    assert out[0].node.get_content() == "Le NAS du client est [CA_SIN], courriel [EMAIL]."


def test_postprocessor_configuration_errors_and_failures(veil: Veil) -> None:
    with pytest.raises(ConfigError):
        VeilPIIPostprocessor(mode="restore", veil=veil)
    broken = VeilPIIPostprocessor(mode="redact", veil=Veil(engine=Engine(detectors=[BrokenDetector()])))
    with pytest.raises(DetectionError):
        broken.postprocess_nodes(retrieved())
    assert VeilPIIPostprocessor.class_name() == "VeilPIIPostprocessor"


# -- the whole path: ingestion, retrieval, synthesis ---------------------------------------------------


def test_query_engine_over_an_anonymized_index_never_leaks_and_restores_the_answer(tmp_path: object) -> None:
    veil = Veil(engine=rules_engine())
    embedder, upstream = RecordingEmbedding(), RecordingLLM()
    upstream.answer = lambda messages: f"Quoting my prompt: {messages[-1].content}"
    embed_model = VeilEmbedding(embed_model=embedder, veil=veil, scope="kb")
    index = VectorStoreIndex.from_documents(
        DOCUMENTS, transformations=[VeilTransform(veil=veil, scope="kb"), splitter()],
        embed_model=embed_model,
    )  # fmt: skip
    engine = index.as_query_engine(llm=VeilLLM(llm=upstream, veil=veil, scope="kb"), similarity_top_k=2)
    response = engine.query(f"How do I reach {CANARIES['email']}?")
    assert leaked(embedder.seen) == [] and leaked(upstream.seen) == []
    assert leaked([dump(index.storage_context, tmp_path)]) == []
    assert CANARIES["email"] in str(response)  # the answer is restored for the caller
    assert "{{" not in str(response)
    assert all(leaked([n.node.get_content()]) == [] for n in response.source_nodes)  # sources stay anonymized
    # The query's value got the collection's token, so the node holding it was retrieved and
    # reached the model with that same token.
    assert "E-mail {{EMAIL_1}}" in response.source_nodes[0].node.get_content()
    prompt = "\n".join(upstream.seen)
    assert "reach {{EMAIL_1}}?" in prompt and "E-mail {{EMAIL_1}}" in prompt
