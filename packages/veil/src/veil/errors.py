"""The one exception hierarchy of veil.

    VeilError                   base of everything veil raises on purpose
    ├── ConfigError             a policy, pattern, option or file that cannot be used as given
    │   └── ModelUnavailable    a NER model package is missing or of the wrong version (names the extra)
    ├── DetectionError          a detector that cannot run (fail closed: no text passes unchecked)
    ├── InputError              input that cannot be read (not UTF-8, malformed JSON Lines …)
    ├── VaultError              the vault cannot do what was asked
    │   ├── VaultUnavailable    the backend is down or unreachable (retry later; nothing was written)
    │   ├── TokenNotFound       no mapping for this token in this tenant and scope (or it expired)
    │   ├── IntegrityError      a row or record failed authentication: tampered, moved or corrupt
    │   └── KeyUnavailable      the key needed is missing, retired or unreachable
    ├── ApprovalError           dual control refused: approvals missing, reused, expired or self-given
    └── WebhookSignatureError   a webhook delivery whose signature or timestamp does not verify

Messages say what to do, and never contain the text being scanned: they carry option names,
line numbers, entity names and counts only.
"""

from __future__ import annotations


class VeilError(Exception):
    """Base class of every error veil raises on purpose."""


class ConfigError(VeilError, ValueError):
    """A configuration value (policy, user pattern, CLI option) is invalid."""


class ModelUnavailable(ConfigError):
    """A NER model cannot be loaded: its package is missing or does not fit the installed library."""


class DetectionError(VeilError):
    """A detector failed; the text must not be passed on as if it had been checked."""


class InputError(VeilError, ValueError):
    """Input that cannot be processed: wrong encoding, malformed JSON Lines, too large."""


class VaultError(VeilError):
    """The vault could not store, find or decrypt a mapping."""


class VaultUnavailable(VaultError):
    """The vault backend is down or unreachable; nothing was written."""


class TokenNotFound(VaultError, KeyError):
    """No mapping for this token in this tenant and scope (never stored, erased or expired)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "token not found"


class IntegrityError(VaultError):
    """Authenticated decryption or a hash chain failed: the data was altered, moved or corrupted."""


class KeyUnavailable(VaultError):
    """The key (or key version) a record needs is missing, retired or unreachable."""


class ApprovalError(VeilError):
    """A dual-control request cannot proceed: approvals missing, reused, expired or self-given.

    `code` names the refusal for programs (`self_approval`, `already_approved`, `expired`,
    `already_revealed`, `not_requester`, `not_eligible`, `insufficient_approvals`, `not_found`,
    `invalid_request`); the message says it for people."""

    def __init__(self, message: str, *, code: str = "approval_refused") -> None:
        super().__init__(message)
        self.code = code


class WebhookSignatureError(VeilError, ValueError):
    """A webhook delivery failed verification (veil.webhooks.verify): refuse it.

    `reason` is `malformed` (no or unreadable X-Veil-Signature header), `mismatch` (altered body
    or another secret), `expired` (timestamp older than the tolerance: a replay) or `future`
    (timestamp ahead of the tolerance: clock skew)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
