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


class _NotSimple(Exception):
    pass


def second_characters(pattern: str, flags: int = 0, limit: int = 20_000) -> set[str] | None:
    """The characters a match of `pattern` can have in second position, or None when that cannot
    be told simply (or a match can be shorter than two characters). Zero-width assertions are
    ignored, which can only make the answer larger: it is a superset, safe for a prefilter.

    >>> "".join(sorted(second_characters("[A-Z]{2}[0-9]"))), sorted(second_characters("X(?:1|b)"))
    ('ABCDEFGHIJKLMNOPQRSTUVWXYZ', ['1', 'b'])
    >>> second_characters("a?b") is None  # "b" alone is one character long
    True
    """
    if flags:
        return None
    c = constants

    def chars_of(op: Any, av: Any) -> set[str]:
        if op is c.LITERAL:
            return {chr(av)}
        if op is c.IN:
            found = _class_characters(av)
        elif op is c.CATEGORY:
            found = set(_CATEGORIES[str(av)]) if str(av) in _CATEGORIES else None
        else:
            found = None
        if found is None:
            raise _NotSimple
        return found

    def walk(items: Any, heads: set[str]) -> set[str]:
        for op, av in items:
            open_heads = {h for h in heads if len(h) < 2}
            if not open_heads:
                return heads
            done = heads - open_heads
            if op in (c.ASSERT, c.ASSERT_NOT, c.AT):
                continue
            if op is c.SUBPATTERN:
                if av[1] or av[2]:
                    raise _NotSimple
                heads = done | walk(av[3], open_heads)
            elif op is c.BRANCH:
                heads = done | set().union(*(walk(branch, open_heads) for branch in av[1]))
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
                low, high, sub = av
                result = set(open_heads) if low == 0 else set()
                current = open_heads
                for count in range(1, min(high, low + 3) + 1):
                    following = walk(sub, current)
                    if following == current:
                        break
                    current = following
                    if count >= low:
                        result |= current
                heads = done | result | (current if low > 0 else set())
            else:
                characters = chars_of(op, av)
                heads = done | {h + ch for h in open_heads for ch in characters}
            if len(heads) > limit:
                raise _NotSimple
        return heads

    try:
        heads = walk(parse(pattern, flags), {""})
    except _NotSimple:
        return None
    if any(len(h) < 2 for h in heads):
        return None
    return {h[1] for h in heads}
