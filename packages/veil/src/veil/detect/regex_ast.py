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


_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_CATEGORIES = {
    "CATEGORY_DIGIT": frozenset("0123456789"),
    "CATEGORY_WORD": _WORD,
    "CATEGORY_SPACE": frozenset(" \t\n\r\f\v"),
}


def _class_characters(items: Any) -> set[str] | None:
    c = constants
    chars: set[str] = set()
    for item_op, item_av in items:
        if item_op is c.LITERAL:
            chars.add(chr(item_av))
        elif item_op is c.RANGE:
            chars.update(chr(code) for code in range(item_av[0], item_av[1] + 1))
        elif item_op is c.CATEGORY and str(item_av) in _CATEGORIES:
            chars.update(_CATEGORIES[str(item_av)])
        else:
            return None  # negated classes, other categories: not a simple set
    return chars


def first_characters(items: Any) -> tuple[set[str], bool] | None:
    """(the characters a match of this parsed sequence can start with, can it match empty),
    or None when that cannot be told simply (lookarounds, negated classes, anchors …)."""
    c = constants
    chars: set[str] = set()
    for op, av in items:
        if op is c.LITERAL:
            chars.add(chr(av))
            return chars, False
        if op is c.IN:
            found = _class_characters(av)
            if found is None:
                return None
            return chars | found, False
        if op is c.CATEGORY and str(av) in _CATEGORIES:
            return chars | set(_CATEGORIES[str(av)]), False
        if op in (c.MAX_REPEAT, c.MIN_REPEAT):
            inner = first_characters(av[2])
            if inner is None:
                return None
            chars |= inner[0]
            if av[0] > 0 and not inner[1]:
                return chars, False
            continue
        if op is c.SUBPATTERN:
            if av[1] or av[2]:
                return None  # scoped flags
            inner = first_characters(av[3])
            if inner is None:
                return None
            chars |= inner[0]
            if not inner[1]:
                return chars, False
            continue
        if op is c.BRANCH:
            empty = False
            for branch in av[1]:
                inner = first_characters(branch)
                if inner is None:
                    return None
                chars |= inner[0]
                empty = empty or inner[1]
            if not empty:
                return chars, False
            continue
        return None
    return chars, True


def class_characters(pattern: str) -> set[str]:
    """The characters a one-character pattern (a literal or a class of literals) matches.

    >>> sorted(class_characters("[eEéÉ]")), class_characters("a")
    (['E', 'e', 'É', 'é'], {'a'})
    """
    result = first_characters(parse(pattern))
    if result is None or result[1]:
        raise ValueError(f"not a simple character class: {pattern!r}")
    return result[0]
