"""Retrieval: documents anonymized for the model, dropped or redacted above a PII threshold, or
restored for callers allowed to see them.

    # ingestion: documents stored with the collection's tokens, never with the values
    store.add_documents(VeilDocumentTransformer(veil, scope="kb").transform_documents(documents))

    # retrieval: whatever the store holds (raw or anonymized), the model path gets tokens only
    retriever = VeilRetriever(retriever=store.as_retriever(), veil=veil, scope="kb", max_pii=5,
                              reveal_to=frozenset({"support-admin"}))

A document's personal values are counted (new values found in it, plus tokens of the collection
it already holds). Above `max_pii`, the document is dropped, or redacted (`[EMAIL]`, irreversible:
its values never reach the vault). Otherwise its values become the collection's tokens, and the
tokens it already holds stay as they are. A run whose scope (`config["configurable"]["veil_scope"]`)
is in `reveal_to` gets the documents restored instead, values in place of tokens.

Each document carries what was done in `metadata["veil"]`: `{"action": ..., "pii_count": n}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import BaseDocumentTransformer, Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, ensure_config
from pydantic import ConfigDict, Field

from veil import ConfigError, Session, Span, Veil, redact
from veil.tokens import TOKEN_RE
from veil_langchain._scope import SCOPE_KEY, pop_scope, scope_from_config
from veil_langchain._values import IDENTIFIER_KEYS

OverLimit = Literal["drop", "redact"]


class DocumentFilter:
    """What happens to one document, in one collection scope (shared by the transformer and the retriever)."""

    def __init__(self, veil: Veil, scope: str, *, max_pii: int | None, over_limit: OverLimit,
                 tenant: str | None = None) -> None:  # fmt: skip
        if over_limit not in ("drop", "redact"):
            raise ConfigError(f"over_limit must be 'drop' or 'redact', got {over_limit!r}")
        if max_pii is not None and max_pii < 0:
            raise ConfigError("max_pii must be a count >= 0, or None for no limit")
        self.veil = veil
        self.session: Session = veil.session(scope, tenant=tenant)
        self.max_pii = max_pii
        self.over_limit = over_limit

    def _tokens_held(self, text: str) -> list[str]:
        return [match.group(0) for match in TOKEN_RE.finditer(text) if self.session.value_of(match.group(0))]

    def anonymize(self, document: Document) -> Document | None:
        text = document.page_content
        spans = self.veil.engine.detect(text)
        held = self._tokens_held(text)
        count = len(spans) + len(held)
        if self.max_pii is not None and count > self.max_pii:
            if self.over_limit == "drop":
                return None
            redacted = self._redact_text(text, spans)
            metadata = self._redact_json(document.metadata)
            return document.model_copy(
                update={"page_content": redacted, "metadata": {**metadata, "veil": {"action": "redacted",
                                                                                   "pii_count": count}}}
            )  # fmt: skip
        content = self.session.anonymize(text, keep_tokens=True).text if spans or held else text
        metadata = self.session.anonymize(document.metadata, skip_keys=IDENTIFIER_KEYS, keep_tokens=True).value
        metadata["veil"] = {"action": "anonymized", "pii_count": count}
        return document.model_copy(update={"page_content": content, "metadata": metadata})

    def _redact_text(self, text: str, spans: list[Span] | None = None) -> str:
        """Values and the scope's tokens alike become `[ENTITY]`."""
        redacted = redact(text, self.veil.engine.detect(text) if spans is None else spans)
        return TOKEN_RE.sub(lambda m: f"[{m.group(1)}]" if self.session.value_of(m.group(0)) else m.group(0), redacted)

    def _redact_json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redact_text(value)
        if isinstance(value, dict):
            return {key: item if key in IDENTIFIER_KEYS else self._redact_json(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._redact_json(item) for item in value]
        return value

    def restore(self, document: Document) -> Document:
        metadata = {key: value for key, value in document.metadata.items() if key != "veil"}
        restored_metadata = self.session.restore(metadata, lenient=True)
        count = len(TOKEN_RE.findall(document.page_content))
        restored_metadata["veil"] = {"action": "restored", "pii_count": count}
        return document.model_copy(
            update={"page_content": self.session.restore(document.page_content, lenient=True),
                    "metadata": restored_metadata}
        )  # fmt: skip

    def anonymize_all(self, documents: Sequence[Document]) -> list[Document]:
        out = []
        for document in documents:
            kept = self.anonymize(document)
            if kept is not None:
                out.append(kept)
        return out


class VeilDocumentTransformer(BaseDocumentTransformer):
    """Anonymizes documents with a collection's tokens (ingestion, or retrieved documents)."""

    def __init__(
        self, veil: Veil, *, scope: str, max_pii: int | None = None, over_limit: OverLimit = "drop",
        tenant: str | None = None,
    ) -> None:  # fmt: skip
        self.veil = veil
        self.scope = scope
        self.max_pii = max_pii
        self.over_limit: OverLimit = over_limit
        self.tenant = tenant
        self._filter(scope)  # validate the options now

    def _filter(self, scope: str) -> DocumentFilter:
        return DocumentFilter(self.veil, scope, max_pii=self.max_pii, over_limit=self.over_limit, tenant=self.tenant)

    def transform_documents(self, documents: Sequence[Document], **kwargs: Any) -> Sequence[Document]:
        scope = pop_scope(kwargs) or self.scope
        return self._filter(scope).anonymize_all(documents)

    async def atransform_documents(self, documents: Sequence[Document], **kwargs: Any) -> Sequence[Document]:
        return self.transform_documents(documents, **kwargs)


class VeilRetriever(BaseRetriever):
    """A retriever whose documents reach the model anonymized, and allowed callers restored."""

    retriever: BaseRetriever
    """The wrapped retriever (a vector store's, BM25 …): raw or anonymized documents."""
    veil: Veil = Field(default_factory=Veil)
    scope: str
    """The collection's scope: the tokens documents carry, or get."""
    max_pii: int | None = None
    """Documents with more personal values than this are dropped or redacted (None: no limit)."""
    over_limit: OverLimit = "drop"
    reveal_to: frozenset[str] = frozenset()
    """Run scopes (`veil_scope` in the run's config) whose callers get documents restored."""
    tenant: str | None = None

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    def _filter(self) -> DocumentFilter:
        return DocumentFilter(self.veil, self.scope, max_pii=self.max_pii, over_limit=self.over_limit,
                              tenant=self.tenant)  # fmt: skip

    def invoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> list[Document]:
        scope = scope_from_config(ensure_config(config))
        return super().invoke(input, config, **({SCOPE_KEY: scope} if scope else {}), **kwargs)

    async def ainvoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> list[Document]:
        scope = scope_from_config(ensure_config(config))
        return await super().ainvoke(input, config, **({SCOPE_KEY: scope} if scope else {}), **kwargs)

    def _finish(self, documents: list[Document], run_scope: str | None) -> list[Document]:
        document_filter = self._filter()
        if run_scope is not None and run_scope in self.reveal_to:
            return [document_filter.restore(document) for document in documents]
        return document_filter.anonymize_all(documents)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        run_scope = pop_scope(kwargs)
        documents = self.retriever.invoke(query, {"callbacks": run_manager.get_child()}, **kwargs)
        return self._finish(documents, run_scope)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        run_scope = pop_scope(kwargs)
        documents = await self.retriever.ainvoke(query, {"callbacks": run_manager.get_child()}, **kwargs)
        return self._finish(documents, run_scope)
