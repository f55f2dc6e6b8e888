"""The one exception hierarchy of veil.

    VeilError                   base of everything veil raises on purpose
    ├── ConfigError             a policy, pattern, option or file that cannot be used as given
    ├── DetectionError          a detector that cannot run (fail closed: no text passes unchecked)
    └── InputError              input that cannot be read (not UTF-8, malformed JSON Lines …)

Messages say what to do, and never contain the text being scanned: they carry option names,
line numbers, entity names and counts only.
"""

from __future__ import annotations


class VeilError(Exception):
    """Base class of every error veil raises on purpose."""


class ConfigError(VeilError, ValueError):
    """A configuration value (policy, user pattern, CLI option) is invalid."""


class DetectionError(VeilError):
    """A detector failed; the text must not be passed on as if it had been checked."""


class InputError(VeilError, ValueError):
    """Input that cannot be processed: wrong encoding, malformed JSON Lines, too large."""
