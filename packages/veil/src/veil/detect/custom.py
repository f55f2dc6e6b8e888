"""Detectors built from configuration: user-defined patterns and the deny-list.

Both run on RE2 (`google-re2`), whose matching time is linear in the text whatever the
pattern, so a pattern from a config file cannot stall the service. Patterns are checked (and
refused with a ConfigError naming them) by `veil.detect.pattern_check` when the Policy is built.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from veil.detect.context import ContextWords
from veil.detect.pattern_check import compile_user_pattern, find_backtracking_hazard, load_re2
from veil.detect.policy import UserPattern, normalize_value
from veil.entities import Language, Span

__all__ = ["DenyListDetector", "UserPatternDetector", "find_backtracking_hazard", "iter_detectors"]


class UserPatternDetector:
    """Runs the policy's user patterns on RE2."""

    name = "user_patterns"
    language_sensitive = False

    def __init__(self, patterns: Sequence[UserPattern]) -> None:
        compiled = []
        for index, user_pattern in enumerate(patterns):
            regex = compile_user_pattern(user_pattern.pattern, f"policy.patterns[{index}] ({user_pattern.name})")
            compiled.append((user_pattern, regex, ContextWords(user_pattern.context)))
        self._compiled = tuple(compiled)

    @property
    def entities(self) -> frozenset[str]:
        return frozenset(p.entity for p, _, _ in self._compiled)

    def detect(self, text: str, language: Language = "en") -> list[Span]:
        spans = []
        for user_pattern, regex, context in self._compiled:
            for match in regex.finditer(text):
                start, end = match.span()
                if start == end:
                    continue
                score = user_pattern.score
                if context and context.near(text, start, end):
                    score = min(1.0, score + user_pattern.context_boost)
                spans.append(Span(start, end, user_pattern.entity, score, f"user:{user_pattern.name}"))
        return spans


class DenyListDetector:
    """Reports every whole-word, case-insensitive occurrence of the deny-listed values."""

    name = "deny_list"
    language_sensitive = False

    def __init__(self, deny: Mapping[str, str]) -> None:
        self._entity_by_value = {normalize_value(value): entity for value, entity in deny.items()}
        self._regex: Any = None
        if deny:
            re2 = load_re2()
            alternatives = sorted(self._entity_by_value, key=len, reverse=True)
            body = "|".join(r"\s+".join(re2.escape(word) for word in value.split()) for value in alternatives)
            # RE2 has no lookarounds: match one boundary character on each side and trim it.
            self._regex = re2.compile(rf"(?i)(?:^|[^\pL\pN_])({body})(?:[^\pL\pN_]|$)")

    @property
    def entities(self) -> frozenset[str]:
        return frozenset(self._entity_by_value.values())

    def detect(self, text: str, language: Language = "en") -> list[Span]:
        if self._regex is None:
            return []
        spans = []
        position = 0
        while position <= len(text):
            match = self._regex.search(text, position)
            if match is None:
                break
            start, end = match.span(1)
            entity = self._entity_by_value.get(normalize_value(text[start:end]))
            if entity is not None:
                spans.append(Span(start, end, entity, 1.0, "deny_list"))
            # Resume at the end of the value, so the boundary character can open the next match.
            position = end
        return spans


def iter_detectors(patterns: Iterable[UserPattern], deny: Mapping[str, str]) -> list[Any]:
    """The configuration-made detectors a policy asks for (none when it asks for none)."""
    patterns = tuple(patterns)
    detectors: list[Any] = []
    if patterns:
        detectors.append(UserPatternDetector(patterns))
    if deny:
        detectors.append(DenyListDetector(deny))
    return detectors
