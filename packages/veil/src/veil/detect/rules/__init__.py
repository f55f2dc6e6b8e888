"""Pattern and checksum detectors, one module per family of identifiers.

`BUILTIN_RULES` is every rule veil ships; `RuleDetector(BUILTIN_RULES)` is the rules engine.
"""

from __future__ import annotations

from dataclasses import replace

from veil.detect.rules import address, canada, contact, dates, europe, finance, secrets
from veil.detect.rules.base import DIGIT_RUN, Promotion, Rule
from veil.detect.rules.detector import DIGIT_ANCHOR, RuleDetector, anchor_of


def _numeric_gate(rule: Rule) -> Rule:
    """Built-in numeric rules share the DIGIT_RUN pass (user rules keep the plain digit anchor)."""
    if rule.gate is None and anchor_of(rule) == DIGIT_ANCHOR:
        return replace(rule, gate=DIGIT_RUN)
    return rule


BUILTIN_RULES: tuple[Rule, ...] = tuple(
    _numeric_gate(rule)
    for rule in (
        *contact.RULES,
        *finance.RULES,
        *canada.RULES,
        *europe.RULES,
        *dates.RULES,
        *address.RULES,
        *secrets.RULES,
    )
)

__all__ = ["BUILTIN_RULES", "Promotion", "Rule", "RuleDetector"]
