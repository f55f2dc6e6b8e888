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
from typing import Any

from veil.detect import regex_ast

_DEFAULT_BEFORE = 48
_DEFAULT_AFTER = 24


def _strip_accents(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _word_atoms(word: str) -> list[str]:
    """A word as a list of regex atoms, one a character: case-insensitive, spaces match any run
    of blanks or dashes, accented letters match with or without their accent."""
    atoms: list[str] = []
    # Accents are optional in words of four letters or more ("numero" for "numéro"); in
    # shorter ones they carry the meaning ("né le" is not the negation "ne le").
    for index, token in enumerate(word.split()):
        if index:
            atoms.append(r"[\s\-]+")
        fold = len(token) >= 4
        for ch in token:
            forms = {ch, ch.lower(), ch.upper()}
            bare = _strip_accents(ch)
            if fold and bare != ch:
                forms |= {bare, bare.lower(), bare.upper()}
            chars = sorted(form for form in forms if len(form) == 1)
            atoms.append(re.escape(chars[0]) if len(chars) == 1 else "[" + "".join(map(re.escape, chars)) + "]")
    return atoms


def _words_regex(words: Iterable[str]) -> re.Pattern[str]:
    """Whole words among `words`, as a trie of atoms.

    The pattern starts with the class of every first letter, so that `re` skips the other
    characters in C instead of trying the words at every position; a look-behind then checks
    that the word starts there, and which branch of the trie to follow.
    """
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for atom in _word_atoms(word):
            node = node.setdefault(atom, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches = [atom + build(child) for atom, child in node.items() if atom]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    firsts: set[str] = set()
    for atom in trie:
        firsts.update(regex_ast.class_characters(atom))
    dispatch = "|".join(f"(?<={atom}){build(child)}" for atom, child in trie.items())
    first = "[" + "".join(map(re.escape, sorted(firsts))) + "]"
    return re.compile(rf"{first}(?<!\w.)(?:{dispatch})(?!\w)")


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
        self._regex: re.Pattern[str] | None = _words_regex(self.words) if self.words else None

    def __bool__(self) -> bool:
        return self._regex is not None

    def near(self, text: str, start: int, end: int) -> bool:
        """True when a context word stands within the window before `start` or after `end`."""
        regex = self._regex
        if regex is None:
            return False
        if self.clause:
            low, high = _clause_bounds(text, max(0, start - self.before), start, end, min(len(text), end + self.after))
        else:
            low, high = start - self.before, end + self.after  # `re` clips both to the text
        if regex.search(text, low, start):
            return True
        return bool(self.after and regex.search(text, end, high))

    def before_only(self, text: str, start: int) -> bool:
        """True when a context word stands in the window before `start`."""
        regex = self._regex
        return bool(regex and regex.search(text, max(0, start - self.before), start))
