"""VeilPIIPostprocessor: what retrieved nodes show of personal data, decided after retrieval.

    VeilPIIPostprocessor(mode="redact")                              # [EMAIL], irreversible
    VeilPIIPostprocessor(mode="tokenize", veil=veil, scope="kb")      # {{EMAIL_1}}, restorable by VeilLLM
    VeilPIIPostprocessor(mode="restore", veil=veil, scope="kb")       # tokens back to values
    VeilPIIPostprocessor(mode="drop", max_pii=0)                      # nodes holding PII are left out

`restore` is for callers entitled to see the values of the collection: the application decides
who gets a query engine with it (each restore is written to veil's audit log). The detection
engine is the Veil's, built once with the postprocessor and shared by every call, never rebuilt
per query; it reads every language it supports (`language=None`: the engine's default, "auto").

Node text and metadata (every key, or `metadata_keys`) are processed; nodes are copied, never
changed in place. An engine failure raises: no node is returned unchecked.
"""

from __future__ import annotations

from typing import Any, Literal

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from veil import ConfigError, Session, Veil, redact
from veil.entities import LanguageOption
from veil.structured import map_json

Mode = Literal["redact", "tokenize", "restore", "drop"]


class VeilPIIPostprocessor(BaseNodePostprocessor):
    """Redacts, tokenizes, restores or drops retrieved nodes by their personal data."""

    mode: Mode = Field(default="redact", description="redact | tokenize | restore | drop")
    scope: str | None = Field(default=None, description="veil scope (the collection): needed to tokenize or restore.")
    tenant: str | None = Field(default=None, description="veil tenant (the Veil's default when None).")
    language: LanguageOption | None = Field(default=None, description="Language for detection (engine default).")
    max_pii: int = Field(default=0, ge=0, description="drop: keep nodes with at most this many personal values.")
    metadata_keys: list[str] | None = Field(
        default=None, description="Metadata keys to process; None (the default) processes every key."
    )
    redaction: str = Field(default="[{entity}]", description="redact: what replaces a value ({entity} is its type).")
    lenient_restore: bool = Field(default=False, description="restore: leave unknown tokens as written.")

    _veil: Veil = PrivateAttr()

    def __init__(self, *, veil: Veil | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.mode in ("tokenize", "restore") and not self.scope:
            raise ConfigError(f"mode {self.mode!r} needs the scope (collection) whose tokens it uses")
        self._veil = veil if veil is not None else Veil()

    @classmethod
    def class_name(cls) -> str:
        return "VeilPIIPostprocessor"

    @property
    def veil(self) -> Veil:
        return self._veil

    def _session(self) -> Session:
        assert self.scope is not None  # checked in __init__
        return self._veil.session(self.scope, tenant=self.tenant)

    def _chosen(self, metadata: dict[str, Any]) -> dict[str, Any]:
        if self.metadata_keys is None:
            return dict(metadata)
        return {key: value for key, value in metadata.items() if key in self.metadata_keys}

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if not nodes:
            return []
        payload = [
            {
                "text": item.node.get_content(metadata_mode=MetadataMode.NONE),
                "metadata": self._chosen(item.node.metadata),
            }
            for item in nodes
        ]
        if self.mode == "drop":
            return [item for item, data in zip(nodes, payload, strict=True) if self._count(data) <= self.max_pii]
        if self.mode == "redact":
            processed = map_json(payload, lambda text, path: self._redact(text), skip=frozenset())
        elif self.mode == "tokenize":
            processed = self._session().anonymize(payload, language=self.language, skip_keys=frozenset(),
                                                  keep_tokens=True).value  # fmt: skip
        else:
            processed = self._session().restore(payload, lenient=self.lenient_restore)
        return [self._rebuild(item, data) for item, data in zip(nodes, processed, strict=True)]

    def _redact(self, text: str) -> str:
        return redact(text, self._veil.engine.detect(text, self.language), self.redaction)

    def _count(self, data: Any) -> int:
        count = 0

        def leaf(text: str, path: tuple[str | int, ...]) -> str:
            nonlocal count
            count += len(self._veil.engine.detect(text, self.language))
            return text

        map_json(data, leaf, skip=frozenset())
        return count

    def _rebuild(self, item: NodeWithScore, data: dict[str, Any]) -> NodeWithScore:
        node = item.node.model_copy()
        node.metadata = {**item.node.metadata, **data["metadata"]}
        node.set_content(data["text"])
        return NodeWithScore(node=node, score=item.score)
