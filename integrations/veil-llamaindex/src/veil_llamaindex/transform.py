"""VeilTransform: anonymize nodes at ingestion time, so the docstore and the vector store never
hold personal values.

    pipeline = IngestionPipeline(transformations=[
        SentenceSplitter(),
        VeilTransform(veil=veil, scope="kb-support"),
        VeilEmbedding(embed_model=embed_model, veil=veil, scope="kb-support"),
    ])

Each node's text, its metadata (every key, or the `metadata_keys` chosen) and the metadata its
relationships copy from the source document are anonymized in the collection's scope. Tokens are
collection-consistent: a value gets the same token in every node and in every later query of
the scope, so queries anonymized by `VeilEmbedding` still retrieve the nodes, and `VeilLLM` on
the same scope restores answers built from them. Nodes are copied, never changed in place.

Nodes veil cannot read (images, audio, video) raise unless `allow_media=True`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import BaseNode, ImageNode, MetadataMode, Node, RelatedNodeInfo, TransformComponent

from veil import ConfigError, InputError, Session, Veil
from veil.entities import LanguageOption


def holds_media(node: BaseNode) -> bool:
    """True for a node whose content includes an image, audio or video veil cannot scan."""
    if isinstance(node, ImageNode):
        return bool(node.image or node.image_path or node.image_url)
    if isinstance(node, Node):
        return any(r is not None for r in (node.image_resource, node.audio_resource, node.video_resource))
    return False


class VeilTransform(TransformComponent):
    """Anonymizes node text and metadata in one scope (a collection), for `IngestionPipeline`."""

    scope: str = Field(description="veil scope: the collection the nodes belong to.")
    tenant: str | None = Field(default=None, description="veil tenant (the Veil's default when None).")
    language: LanguageOption | None = Field(default=None, description="Language for detection (engine default).")
    metadata_keys: list[str] | None = Field(
        default=None, description="Metadata keys to anonymize; None (the default) anonymizes every key."
    )
    allow_media: bool = Field(default=False, description="Pass image/audio/video nodes through unscanned.")

    _veil: Veil = PrivateAttr()

    def __init__(self, *, veil: Veil | None = None, scope: str, **kwargs: Any) -> None:
        if not scope:
            raise ConfigError("VeilTransform needs a scope: the collection its nodes belong to")
        super().__init__(scope=scope, **kwargs)  # type: ignore[call-arg]  # pydantic fields, seen at run time
        self._veil = veil if veil is not None else Veil()

    @classmethod
    def class_name(cls) -> str:
        return "VeilTransform"

    @property
    def veil(self) -> Veil:
        return self._veil

    def session(self) -> Session:
        return self._veil.session(self.scope, tenant=self.tenant)

    def _chosen(self, metadata: dict[str, Any]) -> dict[str, Any]:
        if self.metadata_keys is None:
            return dict(metadata)
        return {key: value for key, value in metadata.items() if key in self.metadata_keys}

    def _related(self, node: BaseNode) -> list[RelatedNodeInfo]:
        related: list[RelatedNodeInfo] = []
        for info in node.relationships.values():
            related.extend(info if isinstance(info, list) else [info])
        return related

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[BaseNode]:
        for index, node in enumerate(nodes):
            if not self.allow_media and holds_media(node):
                raise InputError(
                    f"node {index} ({node.node_id}) holds media veil cannot scan; it was not stored. "
                    "Set allow_media=True to pass media nodes through unscanned."
                )
        payload = [
            {
                "text": node.get_content(metadata_mode=MetadataMode.NONE),
                "metadata": self._chosen(node.metadata),
                "related": [self._chosen(info.metadata) for info in self._related(node)],
            }
            for node in nodes
        ]
        # Every key of this payload is data (a metadata key "id" or "type" included): skip none.
        walked = self.session().anonymize(payload, language=self.language, skip_keys=frozenset(), keep_tokens=True)
        return [self._rebuild(node, anonymized) for node, anonymized in zip(nodes, walked.value, strict=True)]

    def _rebuild(self, node: BaseNode, anonymized: dict[str, Any]) -> BaseNode:
        copy = node.model_copy()
        copy.metadata = {**node.metadata, **anonymized["metadata"]}
        relationships: dict[Any, Any] = {}
        related = iter(anonymized["related"])
        for kind, info in node.relationships.items():
            infos = info if isinstance(info, list) else [info]
            rebuilt = [item.model_copy(update={"metadata": {**item.metadata, **next(related)}}) for item in infos]
            relationships[kind] = rebuilt if isinstance(info, list) else rebuilt[0]
        copy.relationships = relationships
        copy.set_content(anonymized["text"])
        return copy
