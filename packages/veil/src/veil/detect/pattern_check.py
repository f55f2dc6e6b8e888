"""Check a user-supplied regular expression before it is accepted.

User patterns (`policy.patterns`, the `custom` recognizers of a config file) run on RE2
(`google-re2`), whose matching time is linear in the text whatever the pattern: a pattern from a
config file cannot stall the service. They are checked when the Policy is built, so a bad
pattern is refused at configuration time with a message naming it, not on the first request:
- it must compile on RE2 (no backreferences, no lookarounds);
- it must not contain a shape that backtracks catastrophically in other engines (`(a+)+`,
  `(a|ab)*`, `(a{1,20}){1,20}`): RE2 would run it, but such a shape is almost always a mistake,
  and the same config is often shared with tools (Python's `re`, JavaScript) that would hang.
"""

from __future__ import annotations

import re
from typing import Any

from veil.detect import regex_ast
from veil.errors import ConfigError

# A counted repetition that can repeat this often nests like an unbounded one: (a{1,20}){1,20}
# tries 20^20 ways in a backtracking engine before it fails.
_LARGE_REPEAT = 10


def load_re2() -> Any:
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

    A counted repetition that can repeat ten times or more counts as unbounded here:
    `(a{1,20}){1,20}` is as bad as `(a+)+`.

    >>> find_backtracking_hazard(r"(?:x{1,20}){1,20}y") is not None
    True
    >>> find_backtracking_hazard(r"(?:[0-9]{3}-){2}[0-9]{4}") is None
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

    def large(high: Any) -> bool:
        return bool(high is c.MAXREPEAT or high >= _LARGE_REPEAT)

    def run_characters(op: Any, av: Any) -> set[str] | None:
        """The characters a large repetition of one character class repeats, else None."""
        if op not in (c.MAX_REPEAT, c.MIN_REPEAT) or not large(av[1]):
            return None
        first = regex_ast.first_characters(av[2])
        return first[0] if first is not None and len(strip_groups(av[2])) == 1 else None

    def adjacent_runs(items: Any) -> str | None:
        """In a repeated body: nothing but optional items between two runs that share a
        character (`(?:\\s*,?\\s*)+`), or a body that can match nothing (`(?:a?)*`). Either lets
        the engine split the same characters between the runs, and the loop, in many ways."""
        whole = regex_ast.first_characters(items)
        if whole is not None and whole[1]:
            return "a repeated group that can match the empty string, like (a*)* or (\\s*,?\\s*)+"
        previous: set[str] | None = None
        for op, av in items:
            current = run_characters(op, av)
            if current is not None:
                if previous is not None and previous & current:
                    return "two runs of the same characters in a repeated group, like (\\s+,?\\s+)+"
                previous = current
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT) and av[0] == 0:
                continue  # an optional item does not separate the runs around it
            else:
                previous = None
        # Across iterations: the last run of one and the first run of the next, as in (\w+\s?)+.
        first, last = edge_run(items), edge_run(list(reversed(items)))
        if first is not None and last is not None and first & last:
            return "a repeated group that ends and starts with runs of the same characters, like (\\w+\\s?)+"
        return None

    def edge_run(items: Any) -> set[str] | None:
        """The characters of the run a body starts with, optional items skipped, else None."""
        for op, av in items:
            current = run_characters(op, av)
            if current is not None:
                return current
            if not (op in (c.MAX_REPEAT, c.MIN_REPEAT) and av[0] == 0):
                return None
        return None

    def walk(items: Any) -> str | None:
        for op, av in items:
            if op in (c.MAX_REPEAT, c.MIN_REPEAT):
                _, high, body = av
                if large(high):
                    body_items = strip_groups(body)
                    if len(body_items) == 1:
                        inner_op, inner_av = body_items[0]
                        if inner_op in (c.MAX_REPEAT, c.MIN_REPEAT) and large(inner_av[1]):
                            return "a repeated group whose only content is itself repeated, like (a+)+"
                    found = ambiguous_branch(body_items) or adjacent_runs(body_items)
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


def compile_user_pattern(pattern: str, where: str) -> Any:
    """The RE2 regex of a user pattern, or ConfigError saying what is wrong and where."""
    hazard = find_backtracking_hazard(pattern)
    if hazard:
        raise ConfigError(
            f"{where}: the pattern contains {hazard}, which backtracks catastrophically in most "
            "regex engines; rewrite it without the nested repetition"
        )
    re2 = load_re2()
    try:
        return re2.compile(pattern)
    except Exception as exc:
        raise ConfigError(
            f"{where}: the pattern does not compile on RE2 ({exc}); user patterns may not use "
            "backreferences or lookarounds"
        ) from None
