"""Context words: the English and French words that make a weak match likely to be PII.

A SIN is a nine-digit number; "NAS 130 692 544" is almost surely one. Context is looked up by
offset in a bounded window around each match (whole words, case-insensitive, accents optional),
so its cost does not depend on the length of the text: detection stays linear. Presidio's
context step walks every token of the text for every match, which is quadratic on long texts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_DEFAULT_BEFORE = 48
_DEFAULT_AFTER = 24


def _strip_accents(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _word_pattern(word: str) -> str:
    """A word as a regex: spaces match any run of blanks, accented letters match with or without."""
    pieces = []
    # Accents are optional in words of four letters or more ("numero" for "numéro"); in
    # shorter ones they carry the meaning ("né le" is not the negation "ne le").
    for token in word.split():
        fold = len(token) >= 4
        parts = []
        for ch in token:
            bare = _strip_accents(ch)
            parts.append(f"[{re.escape(ch)}{re.escape(bare)}]" if fold and bare != ch else re.escape(ch))
        pieces.append("".join(parts))
    return r"[\s\-]+".join(pieces)


_CLAUSE_END = re.compile(r"[;!?\n]|(?<=[^\W_]{2})\.(?=\s)")
_YEAR = re.compile(r"(?<![0-9])(?:1[89]|20)[0-9]{2}(?![0-9])")


def _clause_bounds(text: str, low: int, start: int, end: int, high: int) -> tuple[int, int]:
    """Narrow [low, high) to the clause around [start, end): a clause ends at ; ! ? a line
    break, or a full stop after a word (not the dots of an abbreviation like "d.o.b.")."""
    for previous in _CLAUSE_END.finditer(text, low, start):
        low = previous.end()
    # Another date before this one takes the context words for itself: "né le 3 mai 1990 et
    # embauché le 2 mars 2020" has one date of birth.
    for year in _YEAR.finditer(text, low, start):
        low = year.end()
    following = _CLAUSE_END.search(text, end, high)
    if following is not None:
        high = following.start()
    return low, high


class ContextWords:
    """A set of context words searched near a match.

    >>> ctx = ContextWords(["SIN", "numéro d'assurance sociale"])
    >>> text = "My SIN is 130 692 544"
    >>> ctx.near(text, 10, 21)
    True
    >>> ctx.near("Mon numero d'assurance sociale: 130 692 544", 32, 43)
    True
    >>> ctx.near("SINGLE 130 692 544", 7, 18)
    False
    """

    __slots__ = ("_regex", "after", "before", "clause", "words")

    def __init__(
        self,
        words: Iterable[str],
        *,
        before: int = _DEFAULT_BEFORE,
        after: int = _DEFAULT_AFTER,
        clause: bool = False,
    ):
        self.words: tuple[str, ...] = tuple(dict.fromkeys(w.strip() for w in words if w.strip()))
        self.before = before
        self.after = after
        self.clause = clause
        """Look only within the match's clause: "né le 1 mai 1990; rendez-vous le 3 mars" has
        one date of birth, not two."""
        if self.words:
            # Longest first, so that "date of birth" is preferred to "date" inside the alternation.
            alternation = "|".join(_word_pattern(w) for w in sorted(self.words, key=len, reverse=True))
            self._regex: re.Pattern[str] | None = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)
        else:
            self._regex = None

    def __bool__(self) -> bool:
        return self._regex is not None

    def near(self, text: str, start: int, end: int) -> bool:
        """True when a context word stands within the window before `start` or after `end`."""
        regex = self._regex
        if regex is None:
            return False
        low, high = max(0, start - self.before), min(len(text), end + self.after)
        if self.clause:
            low, high = _clause_bounds(text, low, start, end, high)
        if regex.search(text, low, start):
            return True
        return bool(self.after and regex.search(text, end, high))

    def before_only(self, text: str, start: int) -> bool:
        """True when a context word stands in the window before `start`."""
        regex = self._regex
        return bool(regex and regex.search(text, max(0, start - self.before), start))
