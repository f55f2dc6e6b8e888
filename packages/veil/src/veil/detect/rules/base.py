"""The shape of a rule, and the helpers rules share.

A rule is data: an entity, a regular expression, a base score, context words and an optional
validator (a checksum, a date check). Modules under `veil.detect.rules` declare rules; the
`RuleDetector` (`veil.detect.rules.detector`) runs them.

Scoring, shared by every rule:
- a match that passes its validator (or has none) scores `score`;
- one that fails it scores `invalid_score` (reported only in strict mode), or is dropped if None;
- context words near the match add `context_boost`; a weak rule (`score` below the permissive
  threshold) therefore needs context in permissive mode and not in strict mode;
- `promote` switches the entity (DATE → DATE_OF_BIRTH) when its own words are near.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

from veil.entities import Language

Validator = Callable[[str], bool]
"""Takes the matched text, says whether it is a valid value (checksum, ranges)."""

Refiner = Callable[[str, int, int], "tuple[int, int] | None"]
"""Takes the text and a match's bounds; returns new bounds (to trim or extend) or None to drop it."""

PiecesOnly = Callable[[str, int, int], bool]
"""Takes the text and a match's bounds; says whether the match can only yield a piece of itself."""


T = TypeVar("T")

_SCAN = threading.local()
_MISSING = object()


def open_scan_memo() -> dict[Any, Any] | None:
    """Start remembering the answers of `remembered_per_scan` functions on this thread, for one scan
    of the rules engine; returns what `close_scan_memo` restores (an enclosing scan's memo)."""
    outer: dict[Any, Any] | None = getattr(_SCAN, "memo", None)
    _SCAN.memo = {}
    return outer


def close_scan_memo(outer: dict[Any, Any] | None) -> None:
    """Forget this scan's answers (they hold the values of its text): nothing outlives the scan."""
    _SCAN.memo = outer


def remembered_per_scan(function: Callable[[str], T]) -> Callable[[str], T]:
    """`function`, a pure function of one string, answering each string once per scan of the
    rules engine: a run of digits is read as many overlapping candidates (a failed candidate
    consumes nothing), which ask the same questions again. Nothing is kept between scans, nor
    shared between threads; called outside a scan, `function` runs each time."""

    @wraps(function)
    def remembering(value: str) -> T:
        memo = getattr(_SCAN, "memo", None)
        if memo is None:
            return function(value)
        key = (function, value)
        found = memo.get(key, _MISSING)
        if found is _MISSING:
            found = memo[key] = function(value)
        return found  # type: ignore[no-any-return]

    return remembering


@dataclass(frozen=True, slots=True)
class Promotion:
    """Report `entity` instead of the rule's own when one of `words` is near the match."""

    entity: str
    words: tuple[str, ...]
    score: float


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern for one entity. See the module docstring for how it is scored."""

    name: str
    entity: str
    pattern: str
    score: float
    context: tuple[str, ...] = ()
    context_boost: float = 0.35
    validate: Validator | None = None
    invalid_score: float | None = None
    refine: Refiner | None = None
    promote: Promotion | None = None
    requires: tuple[str, ...] = ()
    """Substrings one of which must appear in the text for the pattern to be worth running."""
    pieces_only: PiecesOnly | None = None
    """For a part of identifier shapes (a phone): True when refining this match can only keep a
    piece strictly inside it, and no later match of the rule can run past its end. A performance
    hint: such a match that coincides with an identifier shape (a card's digits read as a phone)
    is skipped, since the engine drops every phone strictly inside a shape."""
    precheck: str | None = None
    """A regex that must be found in the text for the pattern to be worth running: a cheap scan
    (led by a rare character class) for what `requires` cannot say, e.g. "a lower-case letter
    right before a digit". A performance hint for rules that run in a pass of their own."""
    left_boundary: bool = True
    """The character before the match must not be a letter or digit."""
    gate: str | None = None
    """A regex every match starts with (a performance hint: "a number, then a word" keeps street
    and written-date rules off bare digit runs). A rule with a gate runs in the shared pass of
    the gate's first characters; by default the pass is chosen from the pattern's own."""
    flags: int = 0
    languages: tuple[Language, ...] = ("en", "fr")
    examples: tuple[str, ...] = field(default=(), compare=False)
    """Values the rule must find (checked by the test suite)."""
    counterexamples: tuple[str, ...] = field(default=(), compare=False)
    """Texts in which the rule must find nothing (checked by the test suite)."""


DIGIT_RUN = r"[+(]?[0-9](?:[0-9 \u00a0\u202f().,\-/]{4}|[0-9]?(?i:st|nd|rd|th))"
"""A gate for the built-in numeric rules: a digit and four more characters of a number (digits
and separators), or a day with its ordinal. Every built-in numeric identifier is at least that
long; "3 items" and "10 h 30" never reach the eighteen numeric patterns."""

LOWER_LETTER_THEN_DIGIT = r"[a-z][0-9]"
"""A precheck for the lower-case forms of IBANs and postal codes: a lower-case letter right before
a digit. Searched over the text's character cells (`veil.detect.shapes`), it is one C-level
search for a two-byte literal, where the patterns themselves start at every lower-case letter."""

NUMBER_THEN_WORD = r"[0-9]{1,5}[^\s]{0,8}[ \u00a0]+[^\W\d_]"
"""A gate: a number (with what sticks to it: "1er", "1234,") then a word. Street addresses and
written dates start so; phones, cards and order numbers do not, and never reach those rules."""


def word_alternation(words: Iterable[str]) -> str:
    """A regex matching any of `words` (literal strings), built as a prefix trie.

    Python's `re` tries the branches of `a|b|c` one after another at every position; a trie
    (`r(?:ue|ang|oute)`) decides on each character once, which matters for the long lists of
    street types and month names that are tried at every number of a text.

    >>> import re
    >>> pattern = word_alternation(["rue", "rang", "route", "r"])
    >>> [bool(re.fullmatch(pattern, w)) for w in ("rue", "rang", "route", "r", "ru")]
    [True, True, True, True, False]
    """
    trie: dict[str, Any] = {}
    for word in set(words):
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        ends_here = "" in node
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends_here:
            return f"(?:{body})?"
        return body

    return build(trie)


def not_inside_longer_number(text: str, start: int, end: int) -> tuple[int, int] | None:
    """A refiner: drop a match that is one piece of a longer dash- or dot-separated number."""
    if start >= 2 and text[start - 1] in "-." and text[start - 2].isdigit():
        return None
    if end + 1 < len(text) and text[end] in "-." and text[end + 1].isdigit():
        return None
    return start, end
