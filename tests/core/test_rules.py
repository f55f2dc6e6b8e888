"""Every built-in rule keeps its promises: its examples are found, its counterexamples are not.

Each `Rule` carries `examples` (values it must find) and `counterexamples` (texts in which it must
find nothing). They are checked here through the public Engine, in a neutral sentence that holds
the rule's first context word, so a rule that needs context in permissive mode gets it.
"""

from __future__ import annotations

import re

import pytest

import veil
from veil.detect import BUILTIN_RULES, MODES, Rule, RuleDetector

# The credential rules' examples are labelled texts ("Bearer <token>", "password: <secret>");
# the rules report the credential alone, not the words that announced it.
VALUE_AFTER_LABEL = {"secret_bearer", "secret_key_value", "secret_password"}

# (rule name, example) → (modes in which it fails, reason). Each is a bug reported upstream.
KNOWN_BUGS: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {}


def _examples() -> list[object]:
    params = []
    for rule in BUILTIN_RULES:
        for example in rule.examples:
            for mode in MODES:
                failing_modes, reason = KNOWN_BUGS.get((rule.name, example), ((), ""))
                marks = [pytest.mark.xfail(strict=True, reason=reason)] if mode in failing_modes else []
                params.append(pytest.param(mode, rule, example, id=f"{mode}-{rule.name}:{example}", marks=marks))
    return params


COUNTEREXAMPLES = [
    pytest.param(rule, text, id=f"{rule.name}:{text}") for rule in BUILTIN_RULES for text in rule.counterexamples
]


def carrier(rule: Rule, value: str) -> str:
    """A sentence with nothing else to find: the rule's first context word, then the value."""
    context = f"{rule.context[0]} " if rule.context else ""
    return f"Note ({context}{value}) fin"


def test_every_builtin_pattern_compiles() -> None:
    for rule in BUILTIN_RULES:
        re.compile(rule.pattern, rule.flags)


def test_rule_names_are_unique() -> None:
    names = [rule.name for rule in BUILTIN_RULES]
    assert len(names) == len(set(names))


def test_a_detector_refuses_two_rules_with_one_name() -> None:
    email = next(rule for rule in BUILTIN_RULES if rule.name == "email")
    with pytest.raises(ValueError, match="duplicate rule names"):
        RuleDetector([email, email])


def test_every_rule_reports_a_builtin_entity() -> None:
    known = {str(entity) for entity in veil.Entity}
    for rule in BUILTIN_RULES:
        assert str(rule.entity) in known, rule.name
        if rule.promote is not None:
            assert str(rule.promote.entity) in known, rule.name


@pytest.mark.parametrize(("mode", "rule", "example"), _examples())
def test_rule_example_is_found_as_its_entity_with_its_exact_value(
    request: pytest.FixtureRequest, mode: str, rule: Rule, example: str
) -> None:
    engine: veil.Engine = request.getfixturevalue(mode)
    text = carrier(rule, example)
    value = re.split(r"[\s:=]+", example)[-1] if rule.name in VALUE_AFTER_LABEL else example
    found = [(span.entity, text[span.start : span.end]) for span in engine.detect(text)]
    assert (str(rule.entity), value) in found


@pytest.mark.parametrize(("rule", "text"), COUNTEREXAMPLES)
def test_rule_counterexample_yields_no_span_of_its_entity_in_permissive_mode(
    permissive: veil.Engine, rule: Rule, text: str
) -> None:
    found = [(span.entity, text[span.start : span.end]) for span in permissive.detect(text)]
    assert [item for item in found if item[0] == str(rule.entity)] == []
