"""VeilEmbeddings: embed documents and queries with their personal data replaced by tokens.

    embeddings = VeilEmbeddings(embeddings=OpenAIEmbeddings(), veil=veil, scope="kb-support")

The embedding provider never sees a value. Documents and queries share the collection's scope,
so one value always becomes the same token in both (the vault finds it by blind index), and a
query about `jean@exemple.ca` still lands near the documents that mention it. A scope is
required: an index outlives a call.
"""

from __future__ import annotations

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field

from veil import Session, Veil


class VeilEmbeddings(BaseModel, Embeddings):
    """Anonymizes texts with collection-consistent tokens before `embeddings` embeds them."""

    embeddings: Embeddings
    """The wrapped embedding model: it only ever sees tokens."""
    scope: str
    """The collection: documents and the queries made against them."""
    veil: Veil = Field(default_factory=Veil)
    tenant: str | None = None
    keep_tokens: bool = True
    """Texts already anonymized in this collection (stored documents) keep their tokens."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    def _session(self) -> Session:
        return self.veil.session(self.scope, tenant=self.tenant)

    def anonymize(self, texts: list[str]) -> list[str]:
        """The texts as the embedding model receives them."""
        session = self._session()
        return [session.anonymize(text, keep_tokens=self.keep_tokens).text for text in texts]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embeddings.embed_documents(self.anonymize(texts))

    def embed_query(self, text: str) -> list[float]:
        return self.embeddings.embed_query(self.anonymize([text])[0])

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await self.embeddings.aembed_documents(self.anonymize(texts))

    async def aembed_query(self, text: str) -> list[float]:
        return await self.embeddings.aembed_query(self.anonymize([text])[0])
