"""Pattern and checksum detectors, one module per family of identifiers.

`BUILTIN_RULES` is every rule veil ships; `RuleDetector(BUILTIN_RULES)` is the rules engine.
"""

from __future__ import annotations

from veil.detect.rules import address, canada, contact, dates, europe, finance, secrets
from veil.detect.rules.base import Promotion, Rule, RuleDetector

BUILTIN_RULES: tuple[Rule, ...] = (
    *contact.RULES,
    *finance.RULES,
    *canada.RULES,
    *europe.RULES,
    *dates.RULES,
    *address.RULES,
    *secrets.RULES,
)

__all__ = ["BUILTIN_RULES", "Promotion", "Rule", "RuleDetector"]
