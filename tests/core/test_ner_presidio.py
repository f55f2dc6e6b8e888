"""Presidio adapter: a user's Presidio recognizers or analyzer as a veil detector (real Presidio)."""

from __future__ import annotations

import pytest
from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer
from presidio_analyzer.nlp_engine import NoOpNlpEngine
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer

from veil import Engine, Policy
from veil.detect.ner.presidio import PresidioDetector
from veil.detect.rules import BUILTIN_RULES, RuleDetector


def employee_ids() -> PatternRecognizer:
    return PatternRecognizer(
        supported_entity="EMPLOYEE_ID",
        patterns=[Pattern("employee id", r"\bEMP-[0-9]{6}\b", 0.9)],
        supported_language="en",
    )


def test_recognizers_run_without_an_nlp_model_and_keep_their_entity_names() -> None:
    detector = PresidioDetector(recognizers=[employee_ids()], languages=("en",))
    text = "Badge EMP-004211 was used."
    assert [(s.entity, text[s.start : s.end], s.source) for s in detector.detect(text, "en")] == [
        ("EMPLOYEE_ID", "EMP-004211", "presidio")
    ]


def test_a_users_analyzer_is_wrapped_as_it_is_and_presidio_names_map_to_veils() -> None:
    analyzer = AnalyzerEngine(
        nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}]), supported_languages=["en"]
    )
    analyzer.registry.recognizers = [CreditCardRecognizer(supported_language="en")]
    detector = PresidioDetector(analyzer)
    text = "card 4111 1111 1111 1111 please"
    assert [(s.entity, text[s.start : s.end]) for s in detector.detect(text, "en")] == [
        ("CREDIT_CARD", "4111 1111 1111 1111")
    ]
    # A French text goes to the English recognizers rather than failing: the analyzer knows no other.
    assert [s.entity for s in detector.detect("carte 4111 1111 1111 1111", "fr")] == ["CREDIT_CARD"]


def test_presidio_spans_go_through_the_engines_policy_and_overlap_resolution() -> None:
    detector = PresidioDetector(recognizers=[employee_ids()], languages=("en",))
    engine = Engine(Policy(ner="off"), detectors=[RuleDetector(BUILTIN_RULES), detector])
    text = "Badge EMP-004211, e-mail jo@example.com"
    assert [(s.entity, text[s.start : s.end]) for s in engine.detect(text, "en")] == [
        ("EMPLOYEE_ID", "EMP-004211"),
        ("EMAIL", "jo@example.com"),
    ]
    excluding = Engine(Policy(ner="off", exclude=frozenset()), detectors=[detector])
    assert excluding.detect("no badge here", "en") == []


def test_configuration_mistakes_are_refused() -> None:
    with pytest.raises(ValueError, match="analyzer or recognizers"):
        PresidioDetector()
    with pytest.raises(ValueError, match="analyzer or recognizers"):
        PresidioDetector(object(), recognizers=[employee_ids()])
    with pytest.raises(TypeError, match="AnalyzerEngine"):
        PresidioDetector(object())
    with pytest.raises(ValueError, match="at least one"):
        PresidioDetector(recognizers=[])
