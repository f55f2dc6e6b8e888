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


def find_backtracking_hazard(pattern: str) -> str | None:
    """Describe a catastrophic-backtracking shape in `pattern`, or return None.

    Inside an unbounded repetition, two shapes are refused: a repetition of a repetition with
    nothing between them (`(a+)+`), and an alternation with an empty branch or with branches
    that can start with the same character (`(a|ab)*` — which Python's parser rewrites as
    `a(?:|b)` —, `(\\d|\\d\\d)+`, `(?:a|[ab]c)*`). A delimiter between repetitions
    (`(?:[A-Z]+-)+`) is fine.

    >>> find_backtracking_hazard(r"(a+)+$") is not None
    True
    >>> find_backtracking_hazard(r"(a|ab)*c") is not None
    True
    >>> find_backtracking_hazard(r"(?:[A-Z]+-)+[0-9]{4}") is None
    True
    """
    c = regex_ast.constants
    try:
        parsed = regex_ast.parse(pattern)
    except re.error:
        return None  # RE2 syntax Python does not know: RE2 will judge it

    def strip_groups(items: Any) -> list[Any]:
        result: list[Any] = list(items)
        while len(result) == 1 and result[0][0] is c.SUBPATTERN:
            result = list(result[0][1][3])
        return result

    def ambiguous_branch(items: Any) -> str | None:
        """An alternation anywhere in a repeated body whose branches are not told apart by their first character."""
        for op, av in items:
            if op is c.BRANCH:
                firsts = [regex_ast.first_characters(branch) for branch in av[1]]
                if any(f is not None and f[1] for f in firsts):
                    return "a repeated alternation with an empty branch, like (a|ab)* or (x|)*"
                known = [f[0] for f in firsts if f is not None]
                if any(a & b for index, a in enumerate(known) for b in known[index + 1 :]):
                    return "a repeated alternation whose branches can start alike, like (a|ab)* or (\\d|\\d\\d)+"
                for branch in av[1]:
                    found = ambiguous_branch(branch)
                    if found:
                        return found
            elif op is c.SUBPATTERN:
                found = ambiguous_branch(av[3])
                if found:
                    return found
        return None

    def walk(items: Any) -> str | None:
        for op, av in items:
            if op in (c.MAX_REPEAT, c.MIN_REPEAT):
                _, high, body = av
                if high is c.MAXREPEAT:
                    body_items = strip_groups(body)
                    if len(body_items) == 1:
                        inner_op, inner_av = body_items[0]
                        if inner_op in (c.MAX_REPEAT, c.MIN_REPEAT) and inner_av[1] is c.MAXREPEAT:
                            return "a repeated group whose only content is itself repeated, like (a+)+"
                    found = ambiguous_branch(body_items)
                    if found:
                        return found
                found = walk(body)
                if found:
                    return found
            elif op is c.SUBPATTERN:
                found = walk(av[3])
                if found:
                    return found
            elif op is c.BRANCH:
                for branch in av[1]:
                    found = walk(branch)
                    if found:
                        return found
        return None

    return walk(parsed)


class UserPatternDetector:
    """Runs the policy's user patterns on RE2."""

    name = "user_patterns"
    language_sensitive = False

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
    language_sensitive = False

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
