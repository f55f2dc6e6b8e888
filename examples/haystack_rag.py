"""RAG with Haystack through veil: the document store and the model hold tokens, the user reads values.

Indexing:  documents ─► VeilDocumentAnonymizer(scope="kb") ─► DocumentWriter (InMemoryDocumentStore)
Query:     question ─► VeilTextAnonymizer(scope="kb") ─► InMemoryBM25Retriever ─► ChatPromptBuilder
                    ─► chat model ─► VeilRestorer ─► answer

A value gets the same token in every document and query of the collection "kb", so the
anonymized question still finds its documents by keyword. The chat model is Haystack's
MockChatGenerator answering from the prompt — swap in OpenAIChatGenerator or any other.

Run: uv run python examples/haystack_rag.py
"""

import os

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # Haystack's usage telemetry: off unless asked

import re
import tempfile

from haystack import Document, Pipeline
from haystack.components.builders import ChatPromptBuilder
from haystack.components.generators.chat import MockChatGenerator
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.components.writers import DocumentWriter
from haystack.dataclasses import ChatMessage
from haystack.document_stores.in_memory import InMemoryDocumentStore
from veil_haystack import VeilConfig, VeilDocumentAnonymizer, VeilRestorer, VeilTextAnonymizer

DOCUMENTS = [
    Document(
        content="Dossier 1042 : la cliente marie.tremblay@exemple.qc.ca a signalé un débit inconnu "
        "sur sa carte 4111 1111 1111 1111. Carte bloquée le 3 mars.",
        meta={"client": "marie.tremblay@exemple.qc.ca"},
    ),
    Document(
        content="Dossier 1043 : rappeler marie.tremblay@exemple.qc.ca au +1 514 872 3456 avant vendredi.",
        meta={"client": "marie.tremblay@exemple.qc.ca"},
    ),
    Document(content="Procédure : un débit contesté est remboursé sous 10 jours ouvrables.", meta={"client": None}),
]
PII = ("marie.tremblay@exemple.qc.ca", "4111 1111 1111 1111", "+1 514 872 3456")
TEMPLATE = [
    ChatMessage.from_system("Réponds en citant les dossiers."),
    ChatMessage.from_user(
        "Dossiers :\n{% for d in documents %}- {{ d.content }}\n{% endfor %}Question : {{ question }}"
    ),
]
MODEL_SAW: list[str] = []


def answer_from_context(messages: list[ChatMessage]) -> str:
    """A stand-in model: quotes the retrieved lines that mention what the question mentions."""
    prompt = messages[-1].text or ""
    MODEL_SAW.append(prompt)
    question = prompt.rsplit("Question :", 1)[-1]
    wanted = set(re.findall(r"\{\{[A-Z_]+_\d+\}\}", question))
    lines = [line[2:] for line in prompt.splitlines() if line.startswith("- ") and any(t in line for t in wanted)]
    return "D'après les dossiers : " + " / ".join(lines) if lines else "Aucun dossier ne correspond."


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        config = VeilConfig(path=home)  # SQLite vault + key file + audit log in `home`
        store = InMemoryDocumentStore()

        indexing = Pipeline()
        indexing.add_component("anonymizer", VeilDocumentAnonymizer(config=config, scope="kb", meta_fields=["client"]))
        indexing.add_component("writer", DocumentWriter(document_store=store))
        indexing.connect("anonymizer.documents", "writer.documents")
        indexing.run({"anonymizer": {"documents": DOCUMENTS}})

        query = Pipeline()
        query.add_component("anonymizer", VeilTextAnonymizer(config=config, scope="kb"))
        query.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=2))
        query.add_component("prompt", ChatPromptBuilder(template=TEMPLATE, required_variables=["question"]))
        query.add_component("llm", MockChatGenerator(response_fn=answer_from_context))
        query.add_component("restorer", VeilRestorer(config=config))
        query.connect("anonymizer.text", "retriever.query")
        query.connect("anonymizer.text", "prompt.question")
        query.connect("retriever.documents", "prompt.documents")
        query.connect("prompt.prompt", "llm.messages")
        query.connect("llm.replies", "restorer.messages")
        query.connect("anonymizer.scope", "restorer.scope")

        question = "Quand faut-il rappeler marie.tremblay@exemple.qc.ca ?"
        result = query.run({"anonymizer": {"text": question}})
        answer = result["restorer"]["messages"][0].text

        stored = store.filter_documents()
        for document in stored:
            print("store holds:   ", document.content, document.meta)
        print("model saw:     ", MODEL_SAW[-1].rsplit("Question :", 1)[-1].strip())
        print("answer:        ", answer)
        held = " ".join(f"{d.content} {d.meta}" for d in stored) + " ".join(MODEL_SAW)
        print("PII in store or model:", any(value in held for value in PII))


if __name__ == "__main__":
    main()
