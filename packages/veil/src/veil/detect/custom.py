"""Detectors built from configuration: user-defined patterns and the deny-list.

Both run on RE2 (`google-re2`), whose matching time is linear in the text whatever the
pattern, so a pattern from a config file cannot stall the service. RE2 has no backreferences
or lookarounds; a pattern that needs them is refused with a message saying so. Shapes that
backtrack catastrophically in other engines (`(a+)+`, `(a|ab)*`) are refused too: they are
almost always mistakes, and the same config is often shared with tools that would hang on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from veil.detect import regex_ast
from veil.detect.context import ContextWords
from veil.detect.policy import UserPattern, normalize_value
from veil.entities import Language, Span
from veil.errors import ConfigError


def _re2() -> Any:
    try:
        import re2  # noqa: PLC0415 - only needed when the policy defines patterns
    except ImportError as exc:  # pragma: no cover - google-re2 is a dependency of veil
        raise ConfigError(
            "user patterns need the google-re2 package (a dependency of veil): pip install google-re2"
        ) from exc
    return re2


def _first_literals(items: Any) -> set[object] | None:
    """The set of ops a subpattern can start with, or None when it cannot be told cheaply."""
    c = regex_ast.constants
    data = list(items)
    if not data:
        return None
    op, av = data[0]
    if op is c.LITERAL:
        return {("lit", av)}
    if op is c.IN:
        return {("in", repr(av))}
    if op is c.SUBPATTERN:
        return _first_literals(av[3])
    return None


def find_backtracking_hazard(pattern: str) -> str | None:
    """Describe a nested-quantifier hazard in `pattern`, or return None.

    >>> find_backtracking_hazard(r"(a+)+$") is not None
    True
    >>> find_backtracking_hazard(r"(?:[A-Z]+-)+[0-9]{4}") is None
    True
    """
    c = regex_ast.constants
    BRANCH, MAX_REPEAT, MAXREPEAT, MIN_REPEAT, SUBPATTERN = (
        c.BRANCH,
        c.MAX_REPEAT,
        c.MAXREPEAT,
        c.MIN_REPEAT,
        c.SUBPATTERN,
    )
    try:
        parsed = regex_ast.parse(pattern)
    except re.error:
        return None  # RE2 syntax Python does not know: RE2 will judge it

    def strip_groups(items: Any) -> list[Any]:
        result: list[Any] = list(items)
        while len(result) == 1 and result[0][0] is SUBPATTERN:
            result = list(result[0][1][3])
        return result

    def walk(items: Any) -> str | None:
        for op, av in items:
            if op in (MAX_REPEAT, MIN_REPEAT):
                _, high, body = av
                body_items = strip_groups(body)
                if high is MAXREPEAT and len(body_items) == 1:
                    inner_op, inner_av = body_items[0]
                    if inner_op in (MAX_REPEAT, MIN_REPEAT) and inner_av[1] is MAXREPEAT:
                        return "a repeated group whose only content is itself repeated, like (a+)+"
                    if inner_op is BRANCH:
                        firsts = [_first_literals(branch) for branch in inner_av[1]]
                        known = [f for f in firsts if f is not None]
                        if len(known) != len(firsts) or any(a & b for i, a in enumerate(known) for b in known[i + 1 :]):
                            return "a repeated alternation whose branches can start alike, like (a|ab)*"
                found = walk(body)
                if found:
                    return found
            elif op is SUBPATTERN:
                found = walk(av[3])
                if found:
                    return found
            elif op is BRANCH:
                for branch in av[1]:
                    found = walk(branch)
                    if found:
                        return found
        return None

    return walk(parsed)


class UserPatternDetector:
    """Runs the policy's user patterns on RE2."""

    name = "user_patterns"

    def __init__(self, patterns: Sequence[UserPattern]) -> None:
        re2 = _re2() if patterns else None
        compiled = []
        for index, user_pattern in enumerate(patterns):
            where = f"policy.patterns[{index}] ({user_pattern.name})"
            hazard = find_backtracking_hazard(user_pattern.pattern)
            if hazard:
                raise ConfigError(
                    f"{where}: the pattern contains {hazard}, which backtracks catastrophically in most "
                    "regex engines; rewrite it without the nested repetition"
                )
            try:
                assert re2 is not None
                regex = re2.compile(user_pattern.pattern)
            except Exception as exc:
                raise ConfigError(
                    f"{where}: the pattern does not compile on RE2 ({exc}); user patterns may not use "
                    "backreferences or lookarounds"
                ) from None
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

    def __init__(self, deny: Mapping[str, str]) -> None:
        self._entity_by_value = {normalize_value(value): entity for value, entity in deny.items()}
        self._regex: Any = None
        if deny:
            re2 = _re2()
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
