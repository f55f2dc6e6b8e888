"""Read a regular expression's syntax tree with Python's own parser.

veil looks at patterns before running them: which characters a built-in rule can start with
(to share one scan among rules), and whether a user pattern nests repetitions that backtrack
catastrophically. The parser is `re._parser` (CPython's, the same that compiles the pattern);
it is private, so it is reached here only, through importlib, and pinned by tests.
"""

from __future__ import annotations

import importlib
from typing import Any

_parser: Any = importlib.import_module("re._parser")
constants: Any = importlib.import_module("re._constants")


def parse(pattern: str, flags: int = 0) -> Any:
    """The parsed pattern: a sequence of (opcode, argument) pairs. Raises re.error."""
    return _parser.parse(pattern, flags)
