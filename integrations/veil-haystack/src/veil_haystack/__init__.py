"""veil for Haystack: components that keep personal data away from the models of a pipeline.

- `VeilTextAnonymizer` / `VeilRestorer`: tokens in, values out, for texts and ChatMessages; the
  scope travels through the pipeline from one to the other.
- `VeilChatGenerator(generator=...)`: any chat generator, anonymized both ways, streaming included.
- `VeilDocumentAnonymizer`: documents (content and chosen meta fields) with the tokens of their
  collection, for indexing; `VeilDocumentFilter`: drop or redact documents holding too much PII.
- `VeilConfig`: the serializable settings all of them are built from (vault, keys, tenant, policy).
- `RestoringCallback`: a streaming callback that restores the chunks of a plain generator (RAG).

Every component serializes with `Pipeline.dumps()`; load with
`Pipeline.loads(yaml, allowed_modules=["veil_haystack"])` (Haystack refuses classes from modules
outside its allowlist).
"""

from veil_haystack.chat_generator import VeilChatGenerator
from veil_haystack.config import VeilConfig
from veil_haystack.documents import VeilDocumentAnonymizer, VeilDocumentFilter
from veil_haystack.streaming import RestoringCallback
from veil_haystack.text import VeilRestorer, VeilTextAnonymizer

__all__ = [
    "RestoringCallback",
    "VeilChatGenerator",
    "VeilConfig",
    "VeilDocumentAnonymizer",
    "VeilDocumentFilter",
    "VeilRestorer",
    "VeilTextAnonymizer",
]
