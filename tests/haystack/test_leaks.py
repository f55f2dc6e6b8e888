"""Canary values through every component: no upstream model and no store ever holds one.

An indexing pipeline (filter → anonymizer → embedding model → store) and a query pipeline
(anonymizer → embedding model → retriever → prompt → chat model → restorer), then the same
conversation through VeilChatGenerator, streamed. The models are recording fakes; veil is real.
"""

from __future__ import annotations

from haystack import Document, Pipeline
from haystack.components.builders import ChatPromptBuilder
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.dataclasses import ChatMessage, StreamingChunk
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack_fakes import HashingDocumentEmbedder, HashingTextEmbedder, RecordingChatGenerator
from haystack_helpers import CARD, EMAIL, PHONE, RULES_ONLY, SIN, assert_no_canary
from veil_haystack import (
    RestoringCallback,
    VeilChatGenerator,
    VeilConfig,
    VeilDocumentAnonymizer,
    VeilDocumentFilter,
    VeilRestorer,
    VeilTextAnonymizer,
)

TICKETS = [
    Document(content=f"Ticket 1 : {EMAIL} signale un débit inconnu sur la carte {CARD}.", meta={"client": EMAIL}),
    Document(content=f"Ticket 2 : {EMAIL} demande un rappel au {PHONE}.", meta={"client": EMAIL}),
    Document(content=f"Ticket 3 : NAS {SIN}, carte {CARD}, courriel {EMAIL}, tél. {PHONE}.", meta={"client": "x"}),
]
TEMPLATE = [
    ChatMessage.from_system("Réponds à partir des tickets."),
    ChatMessage.from_user("{% for d in documents %}{{ d.content }}\n{% endfor %}Question : {{ question }}"),
]


def test_no_model_and_no_store_ever_sees_a_canary_and_the_answer_comes_back_restored(config: VeilConfig) -> None:
    store = InMemoryDocumentStore()
    document_embedder, text_embedder = HashingDocumentEmbedder(), HashingTextEmbedder()
    model = RecordingChatGenerator()

    indexing = Pipeline()
    indexing.add_component("filter", VeilDocumentFilter(config=config, max_pii=3))  # ticket 3 holds too much
    indexing.add_component("anonymizer", VeilDocumentAnonymizer(config=config, scope="tickets", meta_fields=["client"]))
    indexing.add_component("embedder", document_embedder)
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("filter.documents", "anonymizer.documents")
    indexing.connect("anonymizer.documents", "embedder.documents")
    indexing.connect("embedder.documents", "writer.documents")
    indexed = indexing.run({"filter": {"documents": TICKETS}}, include_outputs_from={"filter"})
    assert len(indexed["filter"]["dropped"]) == 1

    query = Pipeline()
    query.add_component("anonymizer", VeilTextAnonymizer(config=config, scope="tickets"))
    query.add_component("embedder", text_embedder)
    query.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=2))
    query.add_component("prompt", ChatPromptBuilder(template=TEMPLATE, required_variables=["question"]))
    query.add_component("llm", model)
    query.add_component("restorer", VeilRestorer(config=config))
    query.connect("anonymizer.text", "embedder.text")
    query.connect("anonymizer.text", "prompt.question")
    query.connect("embedder.embedding", "retriever.query_embedding")
    query.connect("retriever.documents", "prompt.documents")
    query.connect("prompt.prompt", "llm.messages")
    query.connect("llm.replies", "restorer.messages")
    query.connect("anonymizer.scope", "restorer.scope")
    answer = query.run({"anonymizer": {"text": f"Que veut {EMAIL} ?"}})["restorer"]["messages"][0].text

    stored = store.filter_documents()
    assert len(stored) == 2
    assert_no_canary([d.content for d in stored] + [d.meta for d in stored] + [d.id for d in stored])
    assert_no_canary(document_embedder.seen + text_embedder.seen + model.seen)
    assert "{{EMAIL_1}}" in model.seen[-1]
    assert answer.startswith("Reçu : Ticket")
    assert EMAIL in answer and PHONE in answer and "{{" not in answer

    chunks: list[StreamingChunk] = []
    chat_model = RecordingChatGenerator(chunk_size=2)
    chat = VeilChatGenerator(generator=chat_model, config=config, scope="tickets", streaming_callback=chunks.append)
    reply = chat.run([ChatMessage.from_user(f"Et le {PHONE} ? NAS {SIN}")])["replies"][0].text
    assert_no_canary(chat_model.seen)
    assert reply == "".join(c.content for c in chunks) == f"Reçu : Et le {PHONE} ? NAS {SIN}"


def test_a_plain_generator_streams_the_rag_answer_restored_through_a_restoring_callback(config: VeilConfig) -> None:
    """Between an anonymizer and a restorer the generator is plain: its stream is restored by the callback."""
    shown: list[StreamingChunk] = []
    model = RecordingChatGenerator(chunk_size=2)
    query = Pipeline()
    query.add_component("anonymizer", VeilTextAnonymizer(config=config, scope="tickets"))
    query.add_component("llm", model)
    query.add_component("restorer", VeilRestorer(config=config))
    query.connect("anonymizer.messages", "llm.messages")
    query.connect("llm.replies", "restorer.messages")
    query.connect("anonymizer.scope", "restorer.scope")
    callback = RestoringCallback(shown.append, config=config, scope="tickets")
    for question in (f"Que veut {EMAIL} ?", f"Et le NAS {SIN} ?"):  # one callback, run after run
        shown.clear()
        inputs = {
            "anonymizer": {"messages": [ChatMessage.from_user(question)]},
            "llm": {"streaming_callback": callback},
        }
        answer = query.run(inputs)["restorer"]["messages"][0].text
        assert "".join(chunk.content for chunk in shown) == answer == f"Reçu : {question}"
    assert_no_canary(model.seen)


def test_a_restoring_callback_sends_held_back_text_on_finish() -> None:
    config = VeilConfig(tenant="callback-finish", policy=dict(RULES_ONLY))
    scope = VeilTextAnonymizer(config=config, scope="kb").run(text=EMAIL)["scope"]
    shown: list[str] = []
    callback = RestoringCallback(lambda chunk: shown.append(chunk.content), config=config, scope=scope)
    for piece in ("Voir {{EMAIL", "_1}"):  # no finishing chunk: "_1}" could still grow into "_1}}"
        callback(StreamingChunk(content=piece))
    assert "".join(shown) == "Voir "
    callback.finish()
    assert "".join(shown) == f"Voir {EMAIL}"
