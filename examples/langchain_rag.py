"""Anonymized RAG with LangChain: documents are stored, embedded and sent to the model as tokens.

Support tickets go into an InMemoryVectorStore through veil: the store and the embedding model
only ever hold tokens (`{{EMAIL_1}}`), tickets with too much personal data are dropped, and the
question is anonymized with the same tokens, so retrieval still finds the right ticket. The chat
model (a local stand-in that answers by quoting the context it was given) sees tokens only; the
user reads the real values. A caller whose scope is allowed can read the stored tickets restored.

Run: uv run python examples/langchain_rag.py
"""

from __future__ import annotations

import re
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import Field
from veil_langchain import VeilChatModel, VeilDocumentTransformer, VeilEmbeddings, VeilRetriever

from veil import Veil


class WordEmbeddings(Embeddings):
    """A local embedding model (hashed bag of words), standing in for a provider's."""

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * 256
        for word in re.findall(r"\{\{\w+\}\}|\w+", text.lower()):
            vector[sum(ord(ch) * 31**i for i, ch in enumerate(word)) % 256] += 1.0
        norm = sum(v * v for v in vector) ** 0.5 or 1.0
        return [v / norm for v in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


class QuotingModel(BaseChatModel):
    """A local chat model standing in for a provider: it quotes the first context line."""

    received: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "quoting-model"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:  # fmt: skip
        prompt = "\n".join(message.text for message in messages)
        self.received.append(prompt)
        context = prompt.split("Context:\n", 1)[1].splitlines()[0]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(f"From the ticket: {context}"))])


TICKETS = [
    Document(page_content="Marie Tremblay (marie.tremblay@exemple.qc.ca) cannot log in; callback +1 514 872 3456.",
             metadata={"ticket": 101}),
    Document(page_content="The printer on floor 3 is jammed again.", metadata={"ticket": 102}),
    Document(page_content="Refund card 4111 1111 1111 1111, SIN 130 692 544, jean.roy@exemple.ca, +1 438 555 7788.",
             metadata={"ticket": 103}),
]  # fmt: skip


def main() -> None:
    veil = Veil()  # in memory; Veil.open(path) persists the vault and keys
    embeddings = VeilEmbeddings(embeddings=WordEmbeddings(), veil=veil, scope="support-kb")
    store = InMemoryVectorStore(embeddings)
    stored = VeilDocumentTransformer(veil, scope="support-kb", max_pii=3).transform_documents(TICKETS)
    store.add_documents(stored)
    for document in stored:
        print("stored:        ", document.metadata["ticket"], document.page_content)

    retriever = VeilRetriever(retriever=store.as_retriever(search_kwargs={"k": 1}), veil=veil, scope="support-kb",
                              reveal_to=frozenset({"support-admin"}))  # fmt: skip
    model = QuotingModel()
    llm = VeilChatModel(model=model, veil=veil, scope="support-kb", keep_tokens=True)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from the context.\nContext:\n{context}"), ("human", "{question}")]
    )
    chain = (
        {"context": retriever | (lambda docs: "\n".join(d.page_content for d in docs)),
         "question": RunnablePassthrough()}
        | prompt | llm | StrOutputParser()
    )  # fmt: skip

    answer = chain.invoke("Why did marie.tremblay@exemple.qc.ca call?")
    print("to the model:  ", model.received[-1].replace("\n", " | "))
    print("to the user:   ", answer)
    admin = retriever.invoke("log in", config={"configurable": {"veil_scope": "support-admin"}})
    print("for an admin:  ", admin[0].page_content)


if __name__ == "__main__":
    main()
