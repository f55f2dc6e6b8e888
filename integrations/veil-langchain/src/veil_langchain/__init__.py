"""veil for LangChain: personal data replaced before it reaches a model, restored on the way back.

- `VeilChatModel`: any chat model, anonymized in and restored out (invoke, stream, tools,
  structured output).
- `VeilEmbeddings`: any embedding model, on anonymized documents and queries.
- `VeilAnonymizer`, `VeilRestorer`, `RunnableVeil`: the two ends of a mapping in explicit chains.
- `VeilDocumentTransformer`, `VeilRetriever`: retrieved documents anonymized, redacted, dropped or
  restored.
"""

from veil_langchain._scope import SCOPE_KEY
from veil_langchain._values import BinaryContentRefused
from veil_langchain.chat_models import VeilChatModel
from veil_langchain.embeddings import VeilEmbeddings
from veil_langchain.retrievers import VeilDocumentTransformer, VeilRetriever
from veil_langchain.runnables import RunnableVeil, VeilAnonymizer, VeilRestorer

__version__ = "0.1.0"

__all__ = [
    "SCOPE_KEY",
    "BinaryContentRefused",
    "RunnableVeil",
    "VeilAnonymizer",
    "VeilChatModel",
    "VeilDocumentTransformer",
    "VeilEmbeddings",
    "VeilRestorer",
    "VeilRetriever",
    "__version__",
]
