"""The shape of a rule, and the detector that runs a set of them.

A rule is data: an entity, a regular expression, a base score, context words and an optional
validator (a checksum, a date check). Modules under `veil.detect.rules` declare rules; the
`RuleDetector` runs them. Each pattern is compiled once and runs as one C-level pass over the
text (with a substring prefilter where the pattern needs a rare character such as `@`), and
each match costs a bounded amount of Python afterwards (validation, a context window), so the
whole detector is linear in the length of the text.

Scoring, shared by every rule:
- a match that passes its validator (or has none) scores `score`;
- one that fails it scores `invalid_score` (reported only in strict mode), or is dropped if None;
- context words near the match add `context_boost`; a weak rule (`score` below the permissive
  threshold) therefore needs context in permissive mode and not in strict mode;
- `promote` switches the entity (DATE → DATE_OF_BIRTH) when its own words are near.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from veil.detect.context import ContextWords
from veil.entities import Language, Span

Validator = Callable[[str], bool]
"""Takes the matched text, says whether it is a valid value (checksum, ranges)."""

Refiner = Callable[[str, int, int], "tuple[int, int] | None"]
"""Takes the text and a match's bounds; returns new bounds (to trim or extend) or None to drop it."""


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
    left_boundary: bool = True
    """The character before the match must not be a letter or digit."""
    flags: int = 0
    languages: tuple[Language, ...] = ("en", "fr")
    examples: tuple[str, ...] = field(default=(), compare=False)
    """Values the rule must find (checked by the test suite)."""
    counterexamples: tuple[str, ...] = field(default=(), compare=False)
    """Texts in which the rule must find nothing (checked by the test suite)."""


class _CompiledRule:
    __slots__ = ("context", "entity", "promote_entity", "promote_words", "regex", "rule", "source")

    def __init__(self, rule: Rule, source: str) -> None:
        self.rule = rule
        # Plain str, not the Entity enum: spans print and serialise as the bare name.
        self.entity = str(rule.entity)
        self.promote_entity = str(rule.promote.entity) if rule.promote else ""
        self.source = source
        self.regex = re.compile(rule.pattern, rule.flags)
        self.context = ContextWords(rule.context)
        self.promote_words = ContextWords(rule.promote.words) if rule.promote else None


def not_inside_longer_number(text: str, start: int, end: int) -> tuple[int, int] | None:
    """A refiner: drop a match that is one piece of a longer dash- or dot-separated number."""
    if start >= 2 and text[start - 1] in "-." and text[start - 2].isdigit():
        return None
    if end + 1 < len(text) and text[end] in "-." and text[end + 1].isdigit():
        return None
    return start, end


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class RuleDetector:
    """Runs a set of rules over a text. Pure and thread-safe: it holds only compiled patterns."""

    name = "rules"

    def __init__(self, rules: Sequence[Rule], *, source: str = "rules") -> None:
        names = [rule.name for rule in rules]
        duplicates = {name for name in names if names.count(name) > 1}
        if duplicates:
            raise ValueError(f"duplicate rule names: {sorted(duplicates)}")
        self.rules = tuple(rules)
        self._compiled = tuple(_CompiledRule(rule, source) for rule in rules)

    @property
    def entities(self) -> frozenset[str]:
        entities = {rule.entity for rule in self.rules}
        entities.update(rule.promote.entity for rule in self.rules if rule.promote)
        return frozenset(entities)

    def detect(self, text: str, language: Language = "en") -> list[Span]:
        spans: list[Span] = []
        for compiled in self._compiled:
            rule = compiled.rule
            if language not in rule.languages:
                continue
            if rule.requires and not any(needle in text for needle in rule.requires):
                continue
            spans.extend(self._run(compiled, text))
        return spans

    def _run(self, compiled: _CompiledRule, text: str) -> Iterable[Span]:
        rule = compiled.rule
        for match in compiled.regex.finditer(text):
            start, end = match.span()
            if rule.left_boundary and start > 0 and _is_word_char(text[start - 1]):
                continue
            if rule.refine is not None:
                bounds = rule.refine(text, start, end)
                if bounds is None:
                    continue
                start, end = bounds
            value = text[start:end]
            valid = rule.validate is None or rule.validate(value)
            if valid:
                score = rule.score
            elif rule.invalid_score is None:
                continue
            else:
                score = rule.invalid_score
            entity = compiled.entity
            if compiled.context and compiled.context.near(text, start, end):
                score += rule.context_boost if valid else rule.context_boost / 3
            if valid and rule.promote and compiled.promote_words and compiled.promote_words.near(
                text, start, end
            ):
                entity = compiled.promote_entity
                score = max(score, rule.promote.score)
            yield Span(start, end, entity, min(score, 1.0), compiled.source)
