"""A LlamaIndex query engine over an anonymized VectorStoreIndex: the index, the embedding model
and the LLM never see a personal value; the person asking gets the answer with values restored.

Ingestion anonymizes the documents (VeilTransform) before they are split, embedded and stored;
the question is anonymized with the same collection scope, so `marie.tremblay@exemple.qc.ca`
becomes `{{EMAIL_1}}` in the question exactly as in the stored node that holds it — retrieval
still finds that node. The model answers with tokens and VeilLLM restores them.

The embedding model and the LLM are small local stand-ins (a word-hashing embedding and a model
that quotes the context line about the question), so the example runs offline; swap in
OpenAIEmbedding / OpenAI or any other LlamaIndex model unchanged.

Run: uv run python examples/llamaindex_query_engine.py
"""

import hashlib
import math
import re
import tempfile
from collections.abc import Sequence
from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms import ChatMessage, ChatResponse, CompletionResponse, CustomLLM, LLMMetadata
from llama_index.core.node_parser import TokenTextSplitter
from veil_llamaindex import VeilEmbedding, VeilLLM, VeilTransform

from veil import Engine, Veil
from veil.detect import BUILTIN_RULES, RuleDetector

RECORDS = [
    "Marie Tremblay, client since 2019. E-mail marie.tremblay@exemple.qc.ca, phone +1 514 872 3456. "
    "SIN 130 692 544 on file for tax slips.",
    "Jean Roy prefers phone calls. Reach him at +1 438 555 2871 or jean.roy@exemple.ca.",
    "Billing note: card 4111 1111 1111 1111 was charged twice in March; refund approved.",
]
SCOPE = "kb-customers"  # one collection: the same value gets the same token in documents and questions
TOKEN = re.compile(r"\{\{[A-Z_]+_\d+\}\}")


class HashEmbedding(BaseEmbedding):
    """Deterministic bag-of-words embedding (a local stand-in for a real embedding model)."""

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * 128
        for word in re.findall(r"\{\{[^}]+\}\}|\w+", text.lower()):
            digest = hashlib.sha256(word.encode()).digest()
            vector[digest[0] % 128] += 1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed(text)


class QuotingLLM(CustomLLM):
    """Answers with the context line that mentions the question's first token (a stand-in model)."""

    prompts: list[str] = Field(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="quoting-llm")

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.prompts.append(prompt)
        context, _, question = prompt.rpartition("Query:")
        wanted = TOKEN.search(question)
        hit = next((line for line in context.splitlines() if wanted and wanted.group(0) in line), "Not found.")
        return CompletionResponse(text=f"According to the records: {hit.strip()}")

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        raise NotImplementedError


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        # SQLite vault + key file; rules engine only (fast, deterministic), so names stay: drop
        # engine= to use the default engine, which adds NER for names when veil[ner] is installed.
        veil = Veil.open(home, engine=Engine(detectors=[RuleDetector(BUILTIN_RULES)]))
        model = QuotingLLM()
        index = VectorStoreIndex.from_documents(
            [Document(text=text) for text in RECORDS],
            transformations=[VeilTransform(veil=veil, scope=SCOPE), TokenTextSplitter(chunk_size=256)],
            embed_model=VeilEmbedding(embed_model=HashEmbedding(), veil=veil, scope=SCOPE),
        )
        for node in index.docstore.docs.values():
            print("stored:        ", node.get_content())

        engine = index.as_query_engine(llm=VeilLLM(llm=model, veil=veil, scope=SCOPE), similarity_top_k=2)
        answer = engine.query("What is the SIN of marie.tremblay@exemple.qc.ca?")
        for line in model.prompts[-1].splitlines():
            if line.strip():
                print("to the model:  ", line)
        print("to the user:   ", answer)
        veil.close()


if __name__ == "__main__":
    main()
