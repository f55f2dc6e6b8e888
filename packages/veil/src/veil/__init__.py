"""veil: privacy middleware for LLM applications.

Find personal data in text (English and Quebec French), and replace it before it reaches a
model. The names below are the public API; everything else is importable but may change.
"""

from veil.detect import Engine, Policy, UserPattern
from veil.entities import Entity, Span
from veil.errors import ConfigError, DetectionError, InputError, VeilError
from veil.tokens import redact

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DetectionError",
    "Engine",
    "Entity",
    "InputError",
    "Policy",
    "Span",
    "UserPattern",
    "VeilError",
    "__version__",
    "redact",
]
