"""User patterns (`policy.patterns`, `[[policy.patterns]]` in veil.toml) are checked when the
configuration is read: a pattern that would not compile on RE2, or that nests repetitions in a
way that backtracks catastrophically in other engines, is refused with a ConfigError naming it,
before any text is scanned. Accepted patterns run on RE2, linear whatever the pattern (see
test_regex_linear_time for the timing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from veil import ConfigError, Policy, UserPattern
from veil.detect.pattern_check import compile_user_pattern, find_backtracking_hazard


@pytest.mark.parametrize(
    "pattern",
    [
        r"(a+)+$",
        r"(?:x{1,20}){1,20}y",
        r"(a|ab)*c",
        r"(?:[0-9]+)*-",
        r"((ab)*)+",
        r"(?:\s*,?\s*)+end",
        r"(?:\s+,?\s+)+end",
        r"(?:a?)*b",
        r"(?:[a-z]+ ?)+\.",
    ],
)
def test_a_catastrophic_pattern_is_refused_when_the_policy_is_built(pattern: str) -> None:
    with pytest.raises(ConfigError, match=r"policy\.patterns\[0\] \(mine\).*backtracks catastrophically"):
        Policy(patterns=(UserPattern("mine", "MY_ID", pattern),))


def test_a_catastrophic_pattern_in_a_toml_config_is_refused_with_its_name(tmp_path: Path) -> None:
    config = tmp_path / "veil.toml"
    config.write_text(
        "[policy]\n"
        'mode = "strict"\n\n'
        "[[policy.patterns]]\n"
        'name = "order"\nentity = "ORDER_ID"\npattern = "(?:[A-Z]+)+-[0-9]+"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"\(order\).*backtracks catastrophically"):
        Policy.from_toml(config)


@pytest.mark.parametrize("pattern", [r"(a)\1", r"EMP-(?<=E)[0-9]+", r"[0-9", ""])
def test_a_pattern_re2_cannot_run_is_refused_when_the_policy_is_built(pattern: str) -> None:
    with pytest.raises(ConfigError, match=r"policy\.patterns\[0\] \(mine\)"):
        Policy(patterns=(UserPattern("mine", "MY_ID", pattern),))


@pytest.mark.parametrize(
    "pattern",
    [r"EMP-[0-9]{6}", r"(?:[A-Z]+-)+[0-9]{4}", r"(?:[0-9]{3}-){2}[0-9]{4}", r"[a-z]+(?:\.[a-z]+)*@corp\.example"],
)
def test_an_ordinary_pattern_is_accepted_and_compiled_on_re2(pattern: str) -> None:
    assert find_backtracking_hazard(pattern) is None
    regex = compile_user_pattern(pattern, "test")
    assert type(regex).__module__.startswith("re2")


def test_the_error_says_what_to_do_and_never_echoes_text_being_scanned() -> None:
    with pytest.raises(ConfigError) as caught:
        Policy(patterns=(UserPattern("mine", "MY_ID", r"(a+)+"),))
    message = str(caught.value)
    assert "rewrite it without the nested repetition" in message
