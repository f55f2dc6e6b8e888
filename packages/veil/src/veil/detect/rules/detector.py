"""The rules engine: runs a set of rules (`veil.detect.rules.base.Rule`) over a text.

Each rule runs once over the text, in as few C-level scans as possible:
- a rule that needs a rare substring or character (`@`, `://`, `sk-`) runs alone, only when it
  is in the text (`Rule.requires`, `Rule.precheck`);
- rules whose matches start at a word, with a digit or with a capital letter, share one scan
  (a *shared pass*): a scanner finds the word starts that could begin a match, the shape of
  the next characters (`veil.detect.shapes`) tells which rules can match there, and those
  rules are tried together in one combined pattern, each in a lookahead of its own.

Each match then costs a bounded amount of Python (refinement, validation, a context window):
the whole detector is linear in the length of the text.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence

from veil.detect import regex_ast
from veil.detect.context import ContextWords
from veil.detect.rules.base import Rule, close_scan_memo, open_scan_memo
from veil.detect.shapes import WIDTH, ShapeIndex, cells_of, shadow_or_none
from veil.entities import IDENTIFIER_SHAPES, LANGUAGES, Language, Span, unchecked_span


class _CompiledRule:
    __slots__ = (
        "alone",
        "context",
        "entity",
        "has_context",
        "is_part",
        "makes_shape",
        "precheck",
        "promote_entity",
        "promote_words",
        "regex",
        "requires",
        "requires_mark",
        "rule",
        "source",
    )

    def __init__(self, rule: Rule, source: str) -> None:
        self.rule = rule
        self.source = source
        self.requires = rule.requires
        shared = set.intersection(*map(set, rule.requires)) if len(rule.requires) > 1 else set()
        marks = sorted(ch for ch in shared if not ch.isalnum())
        self.requires_mark = marks[0] if marks else None
        """A character that every substring of `requires` holds and few texts do, looked for first:
        one scan of the text instead of one a substring (GitHub's six token prefixes hold "_")."""
        self.regex = re.compile(rule.pattern, rule.flags)
        gated = _gated(rule)
        self.alone = re.compile(gated, rule.flags).match if len(gated) > _LONG_PATTERN else None
        """For a long pattern in a shared pass: its own match, tried at the pass's positions."""
        self.precheck = _Precheck(rule.precheck) if rule.precheck else None
        if self.regex.groupindex or _has_backreference(rule.pattern):
            raise ValueError(f"rule {rule.name}: use (?:...) groups and no backreferences (patterns are combined)")
        scores = (rule.score, rule.invalid_score, rule.context_boost, rule.promote.score if rule.promote else None)
        if any(not score >= 0.0 for score in scores if score is not None):
            # So that every span's score, capped at 1, lies in [0, 1] without a check per span.
            raise ValueError(f"rule {rule.name}: scores and boosts are numbers of at least 0")
        # Plain str, not the Entity enum: spans print and serialise as the bare name.
        self.entity = str(rule.entity)
        self.promote_entity = str(rule.promote.entity) if rule.promote else ""
        self.context = ContextWords(rule.context)
        self.has_context = bool(self.context)
        self.promote_words = ContextWords(rule.promote.words, clause=True) if rule.promote else None
        # A part of identifier shapes (PHONE) is dropped by the engine when it lies strictly inside
        # one of them (whatever their scores): the detector can skip validating it there.
        self.is_part = rule.promote is None and self.entity in _SHAPE_PARTS
        self.makes_shape = self.entity in IDENTIFIER_SHAPES or self.promote_entity in IDENTIFIER_SHAPES


_SHAPE_PARTS: frozenset[str] = frozenset().union(*IDENTIFIER_SHAPES.values())


class _Precheck:
    """A rule's precheck, searched over the text's cells (`veil.detect.shapes`) when its shadow
    can be computed: one C-level search, often for a literal ("ad": a lower-case letter, then a
    digit), that can only say yes more often than the pattern itself; else over the text."""

    __slots__ = ("pattern", "regex", "shadow")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.shadow = shadow_or_none(pattern)
        self.regex = re.compile(pattern)

    def found(self, text: str, cells: bytes) -> bool:
        if self.shadow is not None:
            return self.shadow.search(cells)
        return self.regex.search(text) is not None


def _has_backreference(pattern: str) -> bool:
    return bool(re.search(r"\\[1-9]|\(\?P=", pattern))


# Where a match may start, as a character class; rules whose matches all start with one of
# these characters, after a non-word character, share one pass over the text (in this order).
DIGIT_ANCHOR = "[+(0-9]"
_ANCHORS: dict[str, str] = {
    "upper": "[A-ZÀ-ÖØ-Þ]",
    "digit": DIGIT_ANCHOR,
}


def _first_characters(pattern: str, flags: int) -> set[str] | None:
    """The characters a match of `pattern` can start with, or None when that is not simple."""
    if flags & re.IGNORECASE:
        return None
    result = regex_ast.first_characters(regex_ast.parse(pattern, flags))
    if result is None or result[1]:
        return None
    return result[0]


def anchor_of(rule: Rule) -> str | None:
    """The character class of a shared pass this rule can join, if any."""
    if not rule.left_boundary or rule.flags:
        return None
    first = _first_characters(rule.gate or rule.pattern, 0)
    if not first:
        return None
    for char_class in _ANCHORS.values():
        if all(re.fullmatch(char_class, ch) for ch in first):
            return char_class
    return None


def _pass_of(rule: Rule) -> str | None:
    """The key of the shared pass a rule joins: an anchor class, its gate's first characters, or
    its gate itself; None when it runs in a pass of its own."""
    if not rule.left_boundary or rule.flags:
        return None
    anchor = anchor_of(rule)
    if anchor is not None:
        return anchor
    if rule.gate:
        first = _first_characters(rule.gate, 0)
        return _char_class(first) if first else f"gate:{rule.gate}"
    return None


_LONG_PATTERN = 1_000
"""Characters above which a rule is matched on its own at a position rather than inside the
combined pattern: each set of rules is compiled once, and the street-address patterns would make
every set that holds them slow to compile (tens of milliseconds each)."""


class _SubGate:
    """The combined pattern of some of a shared pass's rules: at a position, one lookahead a
    rule (behind its gate, if it has one), each in a named group; a rule with a long pattern is
    matched on its own, in its turn."""

    __slots__ = ("match", "regex", "slots")

    def __init__(self, rules: Sequence[tuple[int, _CompiledRule]]) -> None:
        combined = [(slot, compiled) for slot, compiled in rules if compiled.alone is None]
        lookaheads = "".join(f"(?=(?P<r{slot}>{_gated(compiled.rule)})|)" for slot, compiled in combined)
        regex = self.regex = re.compile(lookaheads)
        self.match = regex.match
        self.slots: dict[str, tuple[tuple[int, int, _CompiledRule, bool], ...]] = {
            language: tuple(
                (slot, regex.groupindex[f"r{slot}"] if compiled.alone is None else -1, compiled, compiled.is_part)
                for slot, compiled in rules
                if language in compiled.rule.languages
            )
            for language in LANGUAGES
        }
        """Per language: (slot, group or -1 for a rule matched alone, rule, is a part of identifier
        shapes) for the rules that run, in slot order."""


def _gated(rule: Rule) -> str:
    return f"(?={rule.gate}){rule.pattern}" if rule.gate else rule.pattern


class _Pass:
    """One scan of the text: a single rule, or several rules that start at the same kind of word.

    A shared pass tries its rules at word starts, each inside a lookahead in its own named
    group: one C-level match and one Python step per candidate position. The word starts are
    found by a scanner that begins with the class of the rules' first characters (and, when
    every rule tells, of their second characters), so that `re` skips every other character in
    C. At each word start the shape of the next characters (`veil.detect.shapes`) picks the
    rules that can match there: the combined pattern of those rules alone is matched (compiled
    once per set of rules, and remembered per shape).

    The rules that report identifier shapes (cards, IBANs …) come first at each position, so
    that a part of them (a phone-like chunk) found later at the same or a later position can be
    skipped without being validated: the engine would drop it anyway. So is a part whose match
    coincides with a shape when its rule's `pieces_only` says that only a piece could be kept.
    """

    __slots__ = (
        "_subgates",
        "by_shape",
        "full",
        "gate",
        "has_parts",
        "nothing",
        "rules",
        "scanner",
        "shapes",
        "shapes_remembered",
        "single",
        "slot_count",
    )

    _SUBGATES_COMPILED = 1_024

    def __init__(self, rules: Sequence[_CompiledRule], key: str | None, *, by_shape: bool = True) -> None:
        self.single: _CompiledRule | None = None
        self.gate: re.Pattern[str] | None = None
        self.scanner: re.Pattern[str] | None = None
        self.full: _SubGate | None = None
        self.nothing: _SubGate | None = None
        """Stands for "no rule can match at a position of this shape" in `by_shape`."""
        self.shapes: ShapeIndex | None = None
        self.by_shape: dict[bytes, _SubGate] | None = None
        """The combined pattern to match at a position, by shape (see `subgate`)."""
        self._subgates: dict[tuple[int, ...], _SubGate] = {}
        self.shapes_remembered = 65_536
        """At most this many shapes in `by_shape` (it is emptied when full: a text of random
        characters cannot make it grow without bound)."""
        self.has_parts = False
        self.slot_count = len(rules)
        self.rules: tuple[_CompiledRule, ...] = tuple(sorted(rules, key=lambda compiled: not compiled.makes_shape))
        """In slot order: shapes first (the sort is stable)."""
        if key is None:
            (self.single,) = rules
            return
        first: set[str] = set()
        for compiled in self.rules:
            found = _first_characters(compiled.rule.gate or compiled.rule.pattern, 0)
            if not found:
                first = set()
                break
            first |= found
        if first:
            self.scanner = re.compile(_char_class(first) + r"(?<![^\W_].)" + _second_characters(self.rules))
        else:  # pragma: no cover - every shared pass veil builds has simple first characters
            gate = key.removeprefix("gate:")
            self.scanner = re.compile(rf"(?<![^\W_])(?={gate})")
        self.full = _SubGate(list(enumerate(self.rules)))
        self.gate = self.full.regex  # matched at each word start found
        self.has_parts = any(compiled.is_part for compiled in self.rules)
        if by_shape:
            self.shapes = ShapeIndex(
                [(compiled.rule.pattern, compiled.rule.flags, compiled.rule.gate) for compiled in self.rules]
            )
            self.by_shape = {}
            self.nothing = _SubGate([])

    def subgate(self, shape: bytes) -> _SubGate:
        """The combined pattern of the rules that can match at a position of this shape
        (`nothing` when none can), remembered per shape."""
        assert self.by_shape is not None and self.shapes is not None and self.full is not None
        assert self.nothing is not None
        indices = self.shapes.rules_for(shape)
        if not indices:
            found = self.nothing
        elif len(indices) == self.slot_count:
            found = self.full
        else:
            compiled = self._subgates.get(indices)
            if compiled is not None:
                found = compiled
            elif len(self._subgates) >= self._SUBGATES_COMPILED:
                found = self.full  # a bound on compilations; the full pattern is always right
            else:
                found = self._subgates[indices] = _SubGate([(index, self.rules[index]) for index in indices])
        if len(self.by_shape) >= self.shapes_remembered:
            self.by_shape.clear()
        self.by_shape[shape] = found
        return found


def _char_class(characters: Iterable[str]) -> str:
    return "[" + "".join(re.escape(ch) for ch in sorted(characters)) + "]"


def _second_characters(rules: Sequence[_CompiledRule]) -> str:
    """A lookahead on the second character of every rule's matches, or nothing when one cannot tell."""
    union: set[str] = set()
    for compiled in rules:
        second = regex_ast.second_characters(compiled.rule.pattern, compiled.rule.flags)
        if second is None:
            return ""
        union |= second
    return f"(?={_char_class(union)})"


class RuleDetector:
    """Runs a set of rules over a text. Pure and thread-safe: it holds only compiled patterns."""

    name = "rules"

    def __init__(self, rules: Sequence[Rule], *, source: str = "rules", by_shape: bool = True) -> None:
        """`by_shape=False` tries every rule of a shared pass at each of its positions, as before
        the shape index (`veil.detect.shapes`): the same answers, more slowly (for tests)."""
        names = [rule.name for rule in rules]
        duplicates = {name for name in names if names.count(name) > 1}
        if duplicates:
            raise ValueError(f"duplicate rule names: {sorted(duplicates)}")
        self.rules = tuple(rules)
        self.language_sensitive = any(set(rule.languages) != {"en", "fr"} for rule in rules)
        """Whether any rule runs for one language only (else the text's language is not needed)."""
        compiled = [_CompiledRule(rule, source) for rule in rules]
        shared: dict[str, list[_CompiledRule]] = {anchor: [] for anchor in _ANCHORS.values()}
        passes: list[_Pass] = []
        for item in compiled:
            key = _pass_of(item.rule)
            if key is None:
                passes.append(_Pass([item], None))
            else:
                shared.setdefault(key, []).append(item)
        passes.extend(_Pass(group, key, by_shape=by_shape) for key, group in shared.items() if group)
        self._passes = tuple(passes)
        # The rules that run alone come first (an IBAN in lower case is a shape the shared passes
        # must know of), each language's own, so that a text pays only for the rules it may need.
        self._alone: dict[str, tuple[_CompiledRule, ...]] = {
            language: tuple(
                scan.single for scan in passes if scan.single is not None and language in scan.single.rule.languages
            )
            for language in LANGUAGES
        }
        self._shared = tuple(scan for scan in passes if scan.single is None)

    @property
    def entities(self) -> frozenset[str]:
        entities = {rule.entity for rule in self.rules}
        entities.update(rule.promote.entity for rule in self.rules if rule.promote)
        return frozenset(entities)

    def detect(self, text: str, language: Language = "en") -> list[Span]:
        outer = open_scan_memo()
        try:
            return self._detect(text, language)
        finally:
            close_scan_memo(outer)

    def _detect(self, text: str, language: Language) -> list[Span]:
        spans: list[Span] = []
        # (start, end) of the identifier-shaped spans found so far (see _Pass).
        shapes: list[tuple[int, int]] = []
        prechecked: dict[str, bool] = {}
        cells: bytes | None = None  # the text's character cells, when a precheck or a shape needs them
        for single in self._alone[language]:
            requires = single.requires
            if requires:
                mark = single.requires_mark
                if mark is not None and mark not in text:
                    continue
                for needle in requires:
                    if needle in text:
                        break
                else:
                    continue
            precheck = single.precheck
            if precheck is not None:
                found = prechecked.get(precheck.pattern)
                if found is None:
                    if cells is None:
                        cells = cells_of(text)
                    found = prechecked[precheck.pattern] = precheck.found(text, cells)
                if not found:
                    continue
            search = single.regex.search
            position = 0
            while (match := search(text, position)) is not None:
                start, end = match.span()
                span = _score(single, text, start, end)
                if span is not None:
                    spans.append(span)
                    if span.entity in IDENTIFIER_SHAPES:
                        shapes.append((span.start, span.end))
                position = _resume_after(span, start)
        for scan in self._shared:
            full, scanner = scan.full, scan.scanner
            if full is None or scanner is None:  # pragma: no cover - a pass is a single rule or a gate
                continue
            by_shape, nothing = scan.by_shape, scan.nothing
            # As with one finditer per rule, a rule's matches do not overlap each other: a
            # match starting inside the previous match of the same rule is skipped.
            resume = [0] * scan.slot_count
            # The shape that ends furthest among those starting at or before the position.
            pending = sorted(shapes) if scan.has_parts else []
            next_shape = 0
            reach_start = reach_end = -1
            for hit in scanner.finditer(text):
                position = hit.start()
                if by_shape is None:
                    subgate = full
                else:
                    if cells is None:
                        cells = cells_of(text)
                    shape = cells[position : position + WIDTH]
                    known = by_shape.get(shape)
                    subgate = known if known is not None else scan.subgate(shape)
                    if subgate is nothing:
                        continue  # no rule of the pass can match here
                match = subgate.match(text, position)
                if match is None:
                    continue
                regs = match.regs
                if pending:
                    position = regs[0][0]
                    while next_shape < len(pending) and pending[next_shape][0] <= position:
                        shape_start, shape_end = pending[next_shape]
                        next_shape += 1
                        if shape_end > reach_end:  # as the engine's reach: the earlier one on a tie
                            reach_start, reach_end = shape_start, shape_end
                for slot, group, compiled, is_part in subgate.slots[language]:
                    if group >= 0:
                        start, end = regs[group]
                    else:
                        assert compiled.alone is not None
                        alone = compiled.alone(text, position)
                        if alone is None:
                            continue
                        start, end = alone.span()
                    if start < resume[slot]:
                        continue
                    if is_part and (end < reach_end or (end == reach_end and reach_start < start)):
                        resume[slot] = end  # strictly inside an identifier: never reported
                        continue
                    if (
                        is_part
                        and start == reach_start
                        and end == reach_end
                        and compiled.rule.pieces_only is not None
                        and compiled.rule.pieces_only(text, start, end)
                    ):
                        resume[slot] = end  # an identifier itself, of which only pieces could be reported
                        continue
                    span = _score(compiled, text, start, end)
                    resume[slot] = _resume_after(span, start)
                    if span is not None:
                        spans.append(span)
                        if span.entity in IDENTIFIER_SHAPES:
                            shapes.append((span.start, span.end))
                            if scan.has_parts and span.start > start:  # moved on by its refiner
                                bisect.insort(pending, (span.start, span.end), lo=next_shape)
                            elif scan.has_parts and span.end > reach_end:
                                reach_start, reach_end = span.start, span.end
        return spans


_CONSUMING_SCORE = 0.5


def _resume_after(span: Span | None, start: int) -> int:
    """Where a rule may match next. A confident span consumes its text (as finditer would); a
    refined span that kept less than the raw match resumes after what it kept; an invalid or
    weak candidate consumes nothing, so that "189 130 692 544" still finds the SIN that starts
    inside a failed candidate."""
    if span is not None and span.score >= _CONSUMING_SCORE:
        return span.end
    return start + 1


def _score(compiled: _CompiledRule, text: str, start: int, end: int) -> Span | None:
    """Refine, validate and score one match of one rule (see the module docstring)."""
    rule = compiled.rule
    if rule.left_boundary and start > 0:
        before = text[start - 1]
        if before.isalnum() or before == "_":
            return None
    if rule.refine is not None:
        bounds = rule.refine(text, start, end)
        if bounds is None:
            return None
        start, end = bounds
    valid = rule.validate is None or rule.validate(text[start:end])
    if valid:
        score = rule.score
    elif rule.invalid_score is None:
        return None
    else:
        score = rule.invalid_score
    entity = compiled.entity
    if compiled.has_context and compiled.context.near(text, start, end):
        score += rule.context_boost if valid else rule.context_boost / 3
    promote_words = compiled.promote_words
    if valid and promote_words is not None and rule.promote and promote_words.near(text, start, end):
        entity = compiled.promote_entity
        score = max(score, rule.promote.score)
    if not 0 <= start < end:  # an empty match or a refiner's bad bounds: Span's own check refuses them
        return Span(start, end, entity, min(score, 1.0), compiled.source)
    # The rule's scores are checked when it is compiled: a capped score lies in [0, 1].
    return unchecked_span(start, end, entity, min(score, 1.0), compiled.source)
