"""Documents on their way into a store: anonymized with their collection's tokens, or filtered.

    converter ─► splitter ─► VeilDocumentAnonymizer(scope="kb") ─► embedder ─► writer
    query ─► VeilTextAnonymizer(scope="kb") ─► retriever ─► prompt ─► generator ─► VeilRestorer(scope="kb")

`VeilDocumentAnonymizer` gives a value the same token in every document and every query of a
collection (its scope), in this run and later ones, because the vault finds tokens by blind
index: a query about `marie@exemple.qc.ca` becomes a query about `{{EMAIL_1}}` and matches the
documents that mention her, by keyword or by embedding, while the store holds no personal data.
Anonymize before embedding: a document that already carries an embedding (computed from its
values) or binary content veil cannot read is refused.

`VeilDocumentFilter` keeps documents with at most `max_pii` values and drops — or irreversibly
redacts (`[EMAIL]`) — the others: for stores that must hold no reversible data at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Literal

from haystack import Document, component, default_from_dict, default_to_dict

from veil import ConfigError, InputError, redact
from veil_haystack._base import VeilComponent, with_config
from veil_haystack._messages import _walk_value
from veil_haystack.config import VeilConfig

ACTIONS = ("drop", "redact")


def _texts(document: Document, meta_fields: list[str]) -> list[str]:
    texts: list[str] = []

    def collect(text: str) -> str:
        texts.append(text)
        return text

    if document.content is not None:
        texts.append(document.content)
    for name in meta_fields:
        if name in document.meta:
            _walk_value(document.meta[name], collect)
    return texts


def _rebuilt(document: Document, meta_fields: list[str], texts: Iterator[str]) -> Document:
    """A copy with its texts replaced, in the order `_texts` gave them; an id derived from the content
    is derived again (the old one is a hash of the values), an id set by the user is kept."""
    content = next(texts) if document.content is not None else None
    meta = dict(document.meta)
    for name in meta_fields:
        if name in meta:
            meta[name] = _walk_value(meta[name], lambda _: next(texts))
    derived = Document(content=document.content, meta=document.meta).id == document.id
    return replace(document, id="" if derived else document.id, content=content, meta=meta)


def _refuse_unreadable(document: Document, component_name: str) -> None:
    if document.embedding is not None or document.sparse_embedding is not None:
        raise InputError(
            f"{component_name}: document {document.id} already has an embedding, computed from its personal data; "
            "anonymize documents before the embedder"
        )
    if document.blob is not None:
        raise InputError(
            f"{component_name}: document {document.id} has binary content veil cannot check; "
            "convert it to text first (a converter) or drop the blob"
        )


@component
class VeilDocumentAnonymizer(VeilComponent):
    """
    Replaces personal data in documents (content and chosen meta fields) by the tokens of their collection.

    ```python
    anonymizer = VeilDocumentAnonymizer(config=VeilConfig(path=".veil"), scope="kb", meta_fields=["author"])
    anonymizer.run(documents=[Document(content="Contact: marie@exemple.qc.ca", meta={"author": "..."})])
    ```
    """

    def __init__(
        self, *, config: VeilConfig | None = None, scope: str | None = None, meta_fields: list[str] | None = None
    ) -> None:
        """
        :param config: Where the vault and keys are, the tenant and the policy. Use the same config for the
            query side, so that queries find the documents' tokens.
        :param scope: The collection's scope; the `scope` input overrides it. One of the two is required.
        :param meta_fields: Meta fields to anonymize too (every string in them, at any depth). Other meta
            fields are stored as they are.
        """
        self._init_veil(config, scope)
        self.meta_fields = list(meta_fields or [])

    def to_dict(self) -> dict[str, Any]:
        """Serialize the component (its settings; secrets by environment variable name)."""
        return default_to_dict(self, config=self.config, scope=self.scope, meta_fields=self.meta_fields)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VeilDocumentAnonymizer:
        """Rebuild the component from `to_dict()` output."""
        return default_from_dict(cls, with_config(data))

    @component.output_types(documents=list[Document], scope=str, pii_count=int)
    def run(self, documents: list[Document], scope: str | None = None) -> dict[str, Any]:
        """
        Anonymize documents.

        :param documents: Documents with text content (no embedding yet, no binary content).
        :param scope: The collection's scope; overrides the component's.
        :returns: `documents` (copies, anonymized), `scope`, and `pii_count` (values replaced).
        """
        session = self._session(scope, fresh=False)
        texts: list[str] = []
        for document in documents:
            _refuse_unreadable(document, type(self).__name__)
            texts.extend(_texts(document, self.meta_fields))
        anonymized = session.anonymize(texts)
        replaced = iter(anonymized.value)
        out = [_rebuilt(document, self.meta_fields, replaced) for document in documents]
        return {"documents": out, "scope": session.scope, "pii_count": anonymized.pii_count}


@component
class VeilDocumentFilter(VeilComponent):
    """
    Keeps documents holding at most `max_pii` values of personal data; drops or redacts the others.

    Redaction (`[EMAIL]`) is irreversible and needs no vault. Detection follows the config's policy.

    ```python
    VeilDocumentFilter(max_pii=0, action="redact").run(documents=[Document(content="NAS 130 692 544")])
    # {'documents': [Document(content='NAS [CA_SIN]')], 'dropped': []}
    ```
    """

    def __init__(
        self,
        *,
        config: VeilConfig | None = None,
        max_pii: int = 0,
        action: Literal["drop", "redact"] = "drop",
        meta_fields: list[str] | None = None,
    ) -> None:
        """
        :param config: The policy (mode, entities, thresholds, allow and deny lists) to detect with.
        :param max_pii: Documents with more values than this are dropped or redacted (0: any value).
        :param action: `"drop"` (route them to the `dropped` output) or `"redact"` (replace values by `[ENTITY]`).
        :param meta_fields: Meta fields checked (and redacted) too.
        """
        if action not in ACTIONS:
            raise ConfigError(f"VeilDocumentFilter.action must be one of {', '.join(ACTIONS)}; got {action!r}")
        if max_pii < 0:
            raise ConfigError(f"VeilDocumentFilter.max_pii must be 0 or more, got {max_pii}")
        self._init_veil(config, None)
        self.max_pii = max_pii
        self.action = action
        self.meta_fields = list(meta_fields or [])

    def to_dict(self) -> dict[str, Any]:
        """Serialize the component (its settings)."""
        return default_to_dict(
            self, config=self.config, max_pii=self.max_pii, action=self.action, meta_fields=self.meta_fields
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VeilDocumentFilter:
        """Rebuild the component from `to_dict()` output."""
        return default_from_dict(cls, with_config(data))

    @component.output_types(documents=list[Document], dropped=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """
        Filter documents by the amount of personal data they hold.

        :param documents: Documents with text content.
        :returns: `documents` (kept, redacted where needed) and `dropped` (with action "drop").
        """
        engine = self._ensure_veil().engine
        kept: list[Document] = []
        dropped: list[Document] = []
        for document in documents:
            _refuse_unreadable(document, type(self).__name__)
            texts = _texts(document, self.meta_fields)
            found = [engine.detect(text) for text in texts]
            if sum(len(spans) for spans in found) <= self.max_pii:
                kept.append(document)
            elif self.action == "drop":
                dropped.append(document)
            else:
                redacted = iter([redact(text, spans) for text, spans in zip(texts, found, strict=True)])
                kept.append(_rebuilt(document, self.meta_fields, redacted))
        return {"documents": kept, "dropped": dropped}
