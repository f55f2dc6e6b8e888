"""Every pattern veil runs takes time linear in the length of the text, on adversarial inputs.

For each target (a built-in rule as the detector runs it, a raw pattern, a pass of the combined
rules, a module-level pattern of the core, a code path such as restore or the NER sentence
splitter), inputs built to make a backtracking engine retry work (see regex_attacks) are
scanned at two sizes, in CPU time of the test process. Linear code takes about ten times longer
on ten times the text; the test fails when the ratio exceeds 15. Times are the minimum of
repeated runs, and the two sizes are timed back to back in rounds, the best round counting, so
that a busy machine slows a run down but cannot fake a superlinear ratio; a large scan under
10 ms passes outright (a quadratic scan takes seconds, and timer noise rules below).

The normal suite tries each target's most expensive input (screened among a short list) at 5 KB
and 50 KB; the long run (`--runslow`, see docs/reliability.md) tries the three worst of a
thorough list at 10 KB and 100 KB.
"""

from __future__ import annotations

import re

import pytest
from regex_attacks import ANCHORED, LARGE, MAX_RATIO, SCREEN, SMALL, Target, attacks, builtin_targets, scan_seconds

from veil import Policy, UserPattern
from veil.detect.custom import UserPatternDetector

TARGETS = builtin_targets()
FAST_ENOUGH = 0.01  # seconds for the large text: no superlinear scan is that fast at this size


def _ratio(target: Target, small: str, large: str) -> tuple[float, float, float]:
    """(ratio, seconds small, seconds large) of the round with the lowest ratio. A round times both
    sizes back to back, each the fastest of its runs; while the ratio is over the limit, another
    round is timed (five at most). A superlinear scan is over the limit in every round; a load
    spike, or a quiet moment that speeds up one size only (a CI run once timed the small text at
    half its usual time), spoils a round, not all of them."""
    best = (float("inf"), 0.0, 0.0)
    for _ in range(5):
        small_seconds = scan_seconds(target.scan, small, 3)
        large_seconds = scan_seconds(target.scan, large, 1)
        ratio = large_seconds / max(small_seconds, 1e-9)
        if large_seconds < FAST_ENOUGH:
            return ratio, small_seconds, large_seconds
        if ratio < best[0]:
            best = (ratio, small_seconds, large_seconds)
        if ratio <= MAX_RATIO:
            break
    return best


def check_linear(target: Target, *, thorough: bool, worst: int, small: int = SMALL, large: int = LARGE) -> None:
    screened = sorted(
        ((scan_seconds(target.scan, text, 1), label) for label, text in attacks(target, SCREEN, thorough=thorough)),
        key=lambda row: -row[0],
    )
    small_texts = dict(attacks(target, small, thorough=thorough))
    large_texts = dict(attacks(target, large, thorough=thorough))
    failures = []
    for _, label in screened[:worst]:
        ratio, small_seconds, large_seconds = _ratio(target, small_texts[label], large_texts[label])
        if large_seconds >= FAST_ENOUGH and ratio > MAX_RATIO:
            failures.append(
                f"{label}: {small_seconds * 1e3:.2f} ms at {small // 1000} KB, "
                f"{large_seconds * 1e3:.1f} ms at {large // 1000} KB"
            )
    assert not failures, f"{target.name} is superlinear: " + "; ".join(failures)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_every_builtin_pattern_and_scan_is_linear_on_adversarial_input(target: Target) -> None:
    check_linear(target, thorough=False, worst=1, small=SMALL // 2, large=LARGE // 2)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_every_builtin_pattern_and_scan_is_linear_on_every_adversarial_input(target: Target) -> None:
    check_linear(target, thorough=True, worst=3)


def test_the_ratio_of_a_quadratic_scan_is_over_the_limit_in_every_round() -> None:
    # The check itself: a search that retries from every position of a run (quadratic) is caught.
    quadratic = re.compile(r"a*b")
    target = Target(name="quadratic", scan=quadratic.search, characters="a")
    ratio, _, large_seconds = _ratio(target, "a" * 1_000, "a" * 10_000)
    assert large_seconds >= FAST_ENOUGH and ratio > MAX_RATIO


def test_every_anchored_pattern_exists_so_the_list_does_not_hide_a_new_one() -> None:
    import importlib

    for name in ANCHORED:
        module, attribute = name.rsplit(".", 1)
        assert isinstance(getattr(importlib.import_module(module), attribute, None), re.Pattern), name


def test_the_targets_cover_every_builtin_rule() -> None:
    from veil.detect.rules import BUILTIN_RULES

    names = {target.name for target in TARGETS}
    assert {f"rule {rule.name}" for rule in BUILTIN_RULES} <= names
    assert len(TARGETS) > 2 * len(BUILTIN_RULES)


# --- regressions: the superlinear scans these tests found -----------------------------------


def test_the_ipv6_pattern_never_matches_past_the_longest_address_on_a_long_colon_run() -> None:
    """It ran `[0-9A-Fa-f:]*` to the end of "F:F:F:…" from every start: quadratic."""
    from veil.detect.rules.contact import IPV6

    regex = re.compile(IPV6.pattern)
    text = "F:" * 5000
    assert all(match.end() - match.start() <= 80 for match in regex.finditer(text))
    assert [m.group() for m in regex.finditer("at 2001:db8:85a3::8a2e:370:7334 and ::ffff:192.0.2.128.")] == [
        "2001:db8:85a3::8a2e:370:7334",
        "::ffff:192.0.2.128",
    ]


def test_the_sentence_splitter_reads_a_run_of_dots_as_one_sentence() -> None:
    """A lazy `[^\\n]*?` before `[.!?]+(?=\\s)` retried the run of dots at every dot: quadratic."""
    from veil.detect.fusion import _SENTENCE

    text = "." * 5000
    assert [m.span() for m in _SENTENCE.finditer(text)] == [(0, 5000), (5000, 5000)]
    assert [m.group() for m in _SENTENCE.finditer("Hi Jean. example.net is up!\nOk")] == [
        "Hi Jean.",
        " example.net is up!",
        "\n",
        "Ok",
        "",
    ]


# --- user patterns: run on RE2, linear whatever the pattern ---------------------------------

# Each is accepted (no catastrophic shape) yet quadratic under Python's `re` on the input given:
# a greedy run retried from every start position.
USER_PATTERNS = [r"[a-z]+@[a-z]+\.com", r"\w+\s*=\s*\w+;", r"[0-9]+(?:-[0-9]+)*X"]


@pytest.mark.parametrize("pattern", USER_PATTERNS)
def test_a_user_pattern_runs_in_linear_time_on_re2(pattern: str) -> None:
    policy = Policy(patterns=(UserPattern("custom", "CUSTOM_ID", pattern),))
    detector = UserPatternDetector(policy.patterns)
    target = Target(f"user pattern {pattern}", detector.detect, "a@.com=; 0-9X_", ("ab@cd.com", "x = y;", "1-2-3X"))
    check_linear(target, thorough=False, worst=2, small=SMALL // 2, large=LARGE // 2)
