"""VeilEmbedding: any LlamaIndex embedding model fed anonymized text only.

    embed_model = VeilEmbedding(embed_model=OpenAIEmbedding(), veil=veil, scope="kb-support")

Texts and queries are anonymized in the collection's scope before they are embedded, so a
query naming `marie@exemple.qc.ca` embeds as `{{EMAIL_1}}`, exactly as the documents that hold
it did at ingestion (through this wrapper, or `VeilTransform`): retrieval still works, and the
embedding provider never sees the value. Text that is already anonymized in this scope (nodes
from `VeilTransform`) is embedded unchanged, its tokens kept.

A batch is anonymized in one call. An anonymization failure raises: nothing is embedded.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from veil import ConfigError, Session, Veil
from veil.entities import LanguageOption


class VeilEmbedding(BaseEmbedding):
    """Wraps an embedding model: texts and queries are anonymized in one scope before embedding."""

    embed_model: BaseEmbedding = Field(description="The wrapped embedding model; it only sees anonymized text.")
    scope: str = Field(description="veil scope: the collection (index) the texts and queries belong to.")
    tenant: str | None = Field(default=None, description="veil tenant (the Veil's default when None).")
    language: LanguageOption | None = Field(default=None, description="Language for detection (engine default).")
    keep_tokens: bool = Field(default=True, description="Tokens of the scope already in a text stay as they are.")

    _veil: Veil = PrivateAttr()

    def __init__(self, *, embed_model: BaseEmbedding, veil: Veil | None = None, scope: str, **kwargs: Any) -> None:
        if not scope:
            raise ConfigError("VeilEmbedding needs a scope: the collection its texts and queries belong to")
        if kwargs.get("embeddings_cache") is not None:
            # LlamaIndex's embeddings cache is keyed by the text: here that would be the raw text.
            raise ConfigError(
                "VeilEmbedding keys no cache by raw text: set embeddings_cache on the wrapped model, "
                "whose keys are anonymized"
            )
        kwargs.setdefault("model_name", embed_model.model_name)
        kwargs.setdefault("embed_batch_size", embed_model.embed_batch_size)
        super().__init__(embed_model=embed_model, scope=scope, **kwargs)  # type: ignore[call-arg]  # pydantic fields
        self._veil = veil if veil is not None else Veil()

    @classmethod
    def class_name(cls) -> str:
        return "VeilEmbedding"

    @property
    def veil(self) -> Veil:
        return self._veil

    def session(self) -> Session:
        return self._veil.session(self.scope, tenant=self.tenant)

    def anonymize(self, texts: list[str]) -> list[str]:
        """The texts as the wrapped model will see them (one Session, one call)."""
        if not texts:
            return []
        value = self.session().anonymize(texts, language=self.language, keep_tokens=self.keep_tokens).value
        return [str(text) for text in value]

    def _get_query_embedding(self, query: str) -> Embedding:
        return self.embed_model.get_query_embedding(self.anonymize([query])[0])

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await self.embed_model.aget_query_embedding(self.anonymize([query])[0])

    def _get_text_embedding(self, text: str) -> Embedding:
        return self.embed_model.get_text_embedding(self.anonymize([text])[0])

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await self.embed_model.aget_text_embedding(self.anonymize([text])[0])

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self.embed_model.get_text_embedding_batch(self.anonymize(texts))

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self.embed_model.aget_text_embedding_batch(self.anonymize(texts))
