"""PII detection: the Engine, its Policy, and the Detector protocol."""

from veil.detect.engine import Detector, Engine, default_detectors, resolve_overlaps
from veil.detect.language import guess_language
from veil.detect.policy import MODES, Mode, Policy, UserPattern
from veil.detect.rules import BUILTIN_RULES, Rule, RuleDetector

__all__ = [
    "BUILTIN_RULES",
    "MODES",
    "Detector",
    "Engine",
    "Mode",
    "Policy",
    "Rule",
    "RuleDetector",
    "UserPattern",
    "default_detectors",
    "guess_language",
    "resolve_overlaps",
]
