"""veil: privacy middleware for LLM applications.

Find personal data in text (English and Quebec French), replace it with tokens before it
reaches a model, and restore the model's answer. The names below are the public API; everything
else is importable but may change. `Veil` and `Session` load the crypto and vault modules on
first use, so that `import veil` stays light for detection-only users.
"""

from typing import TYPE_CHECKING, Any

from veil.detect import Engine, Policy, UserPattern
from veil.entities import Entity, Span
from veil.errors import (
    ApprovalError,
    ConfigError,
    DetectionError,
    InputError,
    IntegrityError,
    KeyUnavailable,
    TokenNotFound,
    VaultError,
    VaultUnavailable,
    VeilError,
    WebhookSignatureError,
)
from veil.tokens import redact

if TYPE_CHECKING:
    from veil.session import Anonymized, Session, Veil

__version__ = "0.1.0"

__all__ = [
    "Anonymized",
    "ApprovalError",
    "ConfigError",
    "DetectionError",
    "Engine",
    "Entity",
    "InputError",
    "IntegrityError",
    "KeyUnavailable",
    "Policy",
    "Session",
    "Span",
    "TokenNotFound",
    "UserPattern",
    "VaultError",
    "VaultUnavailable",
    "Veil",
    "VeilError",
    "WebhookSignatureError",
    "__version__",
    "redact",
]

_LAZY = {"Veil", "Session", "Anonymized"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from veil import session  # noqa: PLC0415

        return getattr(session, name)
    raise AttributeError(f"module 'veil' has no attribute {name!r}")
