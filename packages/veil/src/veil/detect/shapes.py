"""Shapes: which rules of a shared pass can match at a position, told from the next few characters.

A gate pass (`veil.detect.rules.base`) tries all its rules at every candidate word start: at a
digit, eighteen numeric patterns, although the start of a card ("4111 1111 …") can only begin
a card, a health number, a phone or a national number, and "10 h 30" none of them. Here each
position is classified once, in C, and only the rules whose shape fits are tried.

The classification maps each of the next `WIDTH` characters to a *cell*, a small class of
characters (a digit, a space, a hyphen, an upper- or a lower-case ASCII letter, any other
character …): the start of "4111 1111 1111 1111" has the shape `dddd dddd`. For each rule the
analysis rewrites its pattern over cells — its *shadow*: a character class keeps the cells it
meets, and lookarounds and anchors are dropped, so the shadow of every match of the rule is a
match of the shadow pattern (the rewriting can only let more through). A rule is tried at a
position only when the position's shape could begin a shadow match, or begins with one.

So a rule that is skipped could not have matched there: the shortcut changes the cost of a
scan, never its answers. Whatever the analysis cannot read (an operator it does not know, a
pattern too large) makes the rule be tried everywhere, as before. The tests compare the passes
with and without it on corpus and random texts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

from veil.detect import regex_ast

WIDTH = 12
"""Characters read at each position. Eight tell a card ("dddd dddd") from a SIN ("ddd ddd ")
and a date ("dd/dd/dd") from a phone; more would multiply the shapes to remember."""

# Cell of each ASCII character; every other character is first encoded as "?" (see `shape_of`),
# so "?" shares the cell of all non-ASCII characters.
_NAMED_CELLS = {
    " ": b"s",
    "-": b"h",
    ".": b"p",
    "/": b"l",
    "(": b"o",
    ")": b"c",
    ",": b"m",
    "+": b"q",
    "?": b"x",
}


def _cell(code: int) -> bytes:
    ch = chr(code)
    if ch in _NAMED_CELLS:
        return _NAMED_CELLS[ch]
    if "0" <= ch <= "9":
        return b"d"
    if "A" <= ch <= "Z":
        return b"A"
    if "a" <= ch <= "z":
        return b"a"
    if ch.isspace():
        return b"w"
    return b"z"  # other ASCII punctuation and control characters


SHAPE_TABLE = b"".join(_cell(code) if code < 128 else b"x" for code in range(256))
"""For `bytes.translate`: each byte of a text encoded as ASCII (with "?" for the others) → its cell."""


def cells_of(text: str) -> bytes:
    """Every character of `text` as its cell, one byte a character: `shape_of` is a slice of it.

    >>> cells_of("Tél. 514")
    b'Aaxpsddd'
    """
    return text.encode("ascii", "replace").translate(SHAPE_TABLE)


def shape_of(text: str, position: int) -> bytes:
    """The shape of `text` from `position`: one cell a character, at most WIDTH of them.

    >>> shape_of("card 4111 1111 1111 1111", 5), shape_of("né le 1/2", 0), shape_of("(514)", 0)
    (b'ddddsddd', b'axsaasdl', b'odddc')
    """
    return text[position : position + WIDTH].encode("ascii", "replace").translate(SHAPE_TABLE)


# --- shadows ------------------------------------------------------------------------------------


class NotReadable(Exception):
    """The analysis cannot rewrite this pattern: its rule is tried at every position."""


_IGNORECASE = 2  # re.IGNORECASE, as the parser stores it in scoped flags


_ALL_ASCII = frozenset(range(128))
_ASCII_LETTERS = frozenset(code for code in range(128) if chr(code).isalpha())
# The ASCII members of the categories `re` knows in str patterns (their Unicode forms).
_CATEGORY_CODES: dict[str, frozenset[int]] = {
    name: frozenset(code for code in range(128) if predicate(chr(code)))
    for name, predicate in (
        ("CATEGORY_DIGIT", str.isdecimal),
        ("CATEGORY_NOT_DIGIT", lambda ch: not ch.isdecimal()),
        ("CATEGORY_SPACE", str.isspace),
        ("CATEGORY_NOT_SPACE", lambda ch: not ch.isspace()),
        ("CATEGORY_WORD", lambda ch: ch.isalnum() or ch == "_"),
        ("CATEGORY_NOT_WORD", lambda ch: not (ch.isalnum() or ch == "_")),
    )
}


def _members(op: Any, av: Any, ignore_case: bool) -> tuple[set[int], bool]:
    """(the ASCII codes one character element matches, whether it may match a non-ASCII one)."""
    c = regex_ast.constants
    if op is c.ANY:
        return set(_ALL_ASCII), True
    if op is c.LITERAL or op is c.NOT_LITERAL:
        items: Any = [(c.LITERAL, av)]
        negate = op is c.NOT_LITERAL
    elif op is c.IN:
        items = av
        negate = any(item_op is c.NEGATE for item_op, _ in items)
    elif op is c.CATEGORY:
        items, negate = [(c.CATEGORY, av)], False
    else:
        raise NotReadable(str(op))
    codes: set[int] = set()
    wide = False
    for item_op, item_av in items:
        if item_op is c.NEGATE:
            continue
        if item_op is c.LITERAL:
            low = high = item_av
        elif item_op is c.RANGE:
            low, high = item_av
        elif item_op is c.CATEGORY:
            # Unicode categories reach beyond ASCII; their ASCII members are the str predicates'.
            found = _CATEGORY_CODES.get(str(item_av))
            if found is None:
                raise NotReadable(str(item_av))
            codes |= found
            wide = True
            continue
        else:
            raise NotReadable(str(item_op))
        wide = wide or high >= 128
        ascii_part = range(low, min(high, 127) + 1)
        codes.update(ascii_part)
        if ignore_case:
            letters = [code for code in ascii_part if code in _ASCII_LETTERS]
            codes.update(ord(chr(code).swapcase()) for code in letters)
            if high >= 128:
                # Case folding may bring a character beyond ASCII to an ASCII letter (the Kelvin
                # sign to k): count every ASCII letter in.
                codes |= _ASCII_LETTERS
            if letters:
                wide = True  # and an ASCII letter to one beyond (k to the Kelvin sign, s to ſ)
    if negate:
        if ignore_case:
            return set(_ALL_ASCII), True  # the complement of an over-estimate would be too small
        return set(_ALL_ASCII - codes), True
    return codes, wide


_CLASSES: dict[tuple[Any, str, bool], str] = {}


def _cell_class(op: Any, av: Any, ignore_case: bool) -> str:
    """A bytes-regex character class of the cells one character element can meet."""
    key = (op, repr(av), ignore_case)
    known = _CLASSES.get(key)
    if known is not None:
        return known
    codes, wide = _members(op, av, ignore_case)
    cells = {SHAPE_TABLE[code] for code in codes}
    if wide:
        cells.add(ord("x"))
    if not cells:
        result = "(?!)"
    elif len(cells) == 1:
        result = chr(cells.pop())  # a literal: `re` finds literal prefixes fastest
    else:
        result = "[" + "".join(sorted(chr(cell) for cell in cells)) + "]"
    _CLASSES[key] = result
    return result


def _alternation(branches: Iterable[str]) -> str:
    # Over cells many branches read the same (every month name is letters): keep one of each.
    unique = list(dict.fromkeys(branches))
    return unique[0] if len(unique) == 1 else "(?:" + "|".join(unique) + ")"


def _repeat(body: str, low: int, high: int) -> str:
    if len(body) == 1 and 0 < low <= 32:
        # A cell repeated: spelt out ("ddddddd"), so that `re` sees a literal prefix.
        more = high if high == regex_ast.constants.MAXREPEAT else high - low
        return body * low + (_repeat(body, 0, more) if more else "")
    if high == regex_ast.constants.MAXREPEAT:
        return f"(?:{body}){{{low},}}"
    return f"(?:{body}){{{low},{high}}}"


class _Rewriter:
    """Rewrites a parsed pattern over cells: `full` for its matches, `prefix` for their prefixes.

    Only the first WIDTH cells of a match are ever compared, so the exact form matters most near
    the start. A large part that may not begin before the COARSE_FROM-th character (a street
    name, a city and a province after a civic number and a street type) is rewritten as "any
    run of the cells it uses": looser, still sound, and a pattern a hundredth of the size.
    """

    COARSE_FROM = 4
    COARSE_SIZE = 24
    """Parsed nodes (`_size`) above which an item is large."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def _check(self, pattern: str) -> str:
        if len(pattern) > self.limit:
            raise NotReadable("too large")
        return pattern

    def full(self, items: Any, ignore_case: bool, offset: int = 0) -> str:
        parts = []
        for op, av in items:
            coarse = self._coarse(op, av, ignore_case, offset)
            parts.append(coarse if coarse is not None else self._full_one(op, av, ignore_case, offset))
            offset += _min_length(op, av)
        return self._check("".join(parts))

    def _coarse(self, op: Any, av: Any, ignore_case: bool, offset: int) -> str | None:
        """The loose form of a large item far enough from the start, else None."""
        if offset < self.COARSE_FROM or _size(op, av) <= self.COARSE_SIZE:
            return None
        cells = _item_cells(op, av, ignore_case)
        return "(?:[" + "".join(sorted(chr(cell) for cell in cells)) + "])*" if cells else ""

    @staticmethod
    def _grouping(
        op: Any, av: Any, ignore_case: bool, offset: int, inner: Callable[[Any, bool, int], str]
    ) -> str | None:
        """The shadow of a zero-width item, a group or an alternation, with `inner` (`full` or
        `prefix`) applied to what it holds; None for the items whose two forms differ."""
        c = regex_ast.constants
        if op in (c.ASSERT, c.ASSERT_NOT, c.AT):
            return ""  # zero-width: dropping it only lets more through
        if op is c.SUBPATTERN:
            return "(?:" + inner(av[3], _scoped(ignore_case, av), offset) + ")"
        if op is c.ATOMIC_GROUP:
            return "(?:" + inner(av, ignore_case, offset) + ")"
        if op is c.BRANCH:
            return _alternation(inner(branch, ignore_case, offset) for branch in av[1])
        return None

    def _full_one(self, op: Any, av: Any, ignore_case: bool, offset: int) -> str:
        c = regex_ast.constants
        grouped = self._grouping(op, av, ignore_case, offset, self.full)
        if grouped is not None:
            return grouped
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            low, high, sub = av
            return _repeat(self.full(sub, ignore_case, offset), low, high)
        return _cell_class(op, av, ignore_case)

    def prefix(self, items: Any, ignore_case: bool, offset: int = 0) -> str:
        """Every prefix of a match of `items` (the empty one included)."""
        items = list(items)
        if not items:
            return ""
        op, av = items[0]
        coarse = self._coarse(op, av, ignore_case, offset)
        head = coarse if coarse is not None else self._prefix_one(op, av, ignore_case, offset)
        if len(items) == 1:
            return head
        whole = coarse if coarse is not None else self._full_one(op, av, ignore_case, offset)
        rest = self.prefix(items[1:], ignore_case, offset + _min_length(op, av))
        return self._check(f"(?:{head}|{whole}{rest})")

    def _prefix_one(self, op: Any, av: Any, ignore_case: bool, offset: int) -> str:
        c = regex_ast.constants
        grouped = self._grouping(op, av, ignore_case, offset, self.prefix)
        if grouped is not None:
            return grouped
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            _low, high, sub = av
            if high == 0:
                return ""
            # A prefix of n ≤ high repetitions: fewer than n whole ones, then a prefix of one more.
            whole = self.full(sub, ignore_case, offset)
            most = high if high == c.MAXREPEAT else high - 1
            return self._check(_repeat(whole, 0, most) + "(?:" + self.prefix(sub, ignore_case, offset) + ")")
        return _cell_class(op, av, ignore_case) + "?"


def _size(op: Any, av: Any) -> int:
    """The number of parsed nodes in one item."""
    c = regex_ast.constants
    if op is c.SUBPATTERN:
        return 1 + sum(_size(*item) for item in av[3])
    if op is c.ATOMIC_GROUP or op in (c.ASSERT, c.ASSERT_NOT):
        items = av if op is c.ATOMIC_GROUP else av[1]
        return 1 + sum(_size(*item) for item in items)
    if op is c.BRANCH:
        return 1 + sum(_size(*item) for branch in av[1] for item in branch)
    if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
        return 1 + sum(_size(*item) for item in av[2])
    return 1


def _min_length(op: Any, av: Any) -> int:
    """The fewest characters one parsed item matches."""
    c = regex_ast.constants
    if op in (c.ASSERT, c.ASSERT_NOT, c.AT):
        return 0
    if op is c.SUBPATTERN:
        return sum(_min_length(*item) for item in av[3])
    if op is c.ATOMIC_GROUP:
        return sum(_min_length(*item) for item in av)
    if op is c.BRANCH:
        return min(sum(_min_length(*item) for item in branch) for branch in av[1])
    if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
        low, _high, sub = av
        return int(low) * sum(_min_length(*item) for item in sub)
    return 1


def _item_cells(op: Any, av: Any, ignore_case: bool) -> set[int]:
    """Every cell a character of one parsed item's matches can be in."""
    c = regex_ast.constants
    if op in (c.ASSERT, c.ASSERT_NOT, c.AT):
        return set()
    if op is c.SUBPATTERN:
        inner = _scoped(ignore_case, av)
        return set().union(*(_item_cells(o, a, inner) for o, a in av[3]))
    if op is c.ATOMIC_GROUP:
        return set().union(*(_item_cells(o, a, ignore_case) for o, a in av))
    if op is c.BRANCH:
        return set().union(*(_item_cells(o, a, ignore_case) for branch in av[1] for o, a in branch))
    if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
        return set().union(*(_item_cells(o, a, ignore_case) for o, a in av[2]))
    codes, wide = _members(op, av, ignore_case)
    cells = {SHAPE_TABLE[code] for code in codes}
    if wide:
        cells.add(ord("x"))
    return cells


def _scoped(ignore_case: bool, subpattern: Any) -> bool:
    _group, add_flags, del_flags, _items = subpattern
    if add_flags & _IGNORECASE:
        return True
    if del_flags & _IGNORECASE:
        return False
    return ignore_case


class Shadow:
    """A pattern rewritten over cells; `may_start(shape)` says whether a match can start at a
    position of that shape (False only when none can)."""

    __slots__ = ("_full", "_prefix")

    def __init__(self, pattern: str, flags: int = 0, *, limit: int = 200_000) -> None:
        parsed = regex_ast.parse(pattern, flags)
        rewriter = _Rewriter(limit)
        ignore_case = bool(flags & _IGNORECASE)
        self._full = re.compile(rewriter.full(parsed, ignore_case).encode())
        self._prefix = re.compile(rewriter.prefix(parsed, ignore_case).encode())

    def search(self, cells: bytes) -> bool:
        """Whether a match may stand anywhere in a text of these cells (`cells_of`)."""
        return self._full.search(cells) is not None

    def may_start(self, shape: bytes) -> bool:
        # The text from here is a prefix of a match (the match runs past the shape), or it
        # begins with a whole match (a match shorter than the shape).
        return self._prefix.fullmatch(shape) is not None or self._full.match(shape) is not None


@lru_cache(maxsize=1024)
def shadow_or_none(pattern: str, flags: int = 0) -> Shadow | None:
    """The shadow of a pattern, or None when the analysis cannot read it. Shadows are immutable
    and remembered: every detector built from the same rules shares them."""
    try:
        return Shadow(pattern, flags)
    except (NotReadable, RecursionError):
        return None


class ShapeIndex:
    """For a list of rules (pattern, flags, gate or None), the rules that may match at a position
    of a given shape, as a tuple of their indices. A rule with a gate matches only where its gate
    does: both shadows must allow the shape. The shadows are computed on first use (a tenth of a
    second for the built-in rules, once per process), not when a detector is built."""

    __slots__ = ("_rules", "_shadows")

    def __init__(self, rules: Sequence[tuple[str, int, str | None]]) -> None:
        self._rules = tuple(rules)
        self._shadows: list[tuple[Shadow | None, Shadow | None]] | None = None

    def _read(self) -> list[tuple[Shadow | None, Shadow | None]]:
        return [
            (shadow_or_none(gate) if gate else None, shadow_or_none(pattern, flags))
            for pattern, flags, gate in self._rules
        ]

    def rules_for(self, shape: bytes) -> tuple[int, ...]:
        shadows = self._shadows
        if shadows is None:
            shadows = self._shadows = self._read()
        return tuple(
            index
            for index, (gate, shadow) in enumerate(shadows)
            if (gate is None or gate.may_start(shape)) and (shadow is None or shadow.may_start(shape))
        )
