"""veil for LlamaIndex: keep personal data away from the model and the vector store.

- `VeilLLM` wraps any LLM (chat, complete, streaming, async, function calling).
- `VeilEmbedding` wraps any embedding model (text, query, batch, async).
- `VeilTransform` anonymizes nodes in an `IngestionPipeline`.
- `VeilPIIPostprocessor` redacts, tokenizes, restores or drops retrieved nodes.

They share a `veil.Veil` (engine, vault, keys) and name a scope; within a scope one value always
gets the same token, so text anonymized at ingestion and queries anonymized later still match.
"""

from veil_llamaindex.embeddings import VeilEmbedding
from veil_llamaindex.llms import VeilLLM
from veil_llamaindex.postprocessor import VeilPIIPostprocessor
from veil_llamaindex.transform import VeilTransform

__version__ = "0.1.0"

__all__ = ["VeilEmbedding", "VeilLLM", "VeilPIIPostprocessor", "VeilTransform", "__version__"]
