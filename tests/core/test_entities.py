"""Spans are valid values, and `redact` replaces exactly them."""

from __future__ import annotations

import pytest

import veil
from veil import Span
from veil.entities import SPECIFICITY, specificity_rank


@pytest.mark.parametrize(("start", "end"), [(-1, 3), (3, 3), (5, 2)])
def test_a_span_needs_zero_le_start_lt_end(start: int, end: int) -> None:
    with pytest.raises(ValueError, match="start < end"):
        Span(start, end, "EMAIL", 0.5)


@pytest.mark.parametrize("score", [-0.01, 1.01])
def test_a_span_score_lies_in_zero_one(score: float) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Span(0, 1, "EMAIL", score)


def test_span_serialises_to_plain_values() -> None:
    span = Span(9, 24, veil.Entity.EMAIL, 0.951234, "rules")
    assert span.to_dict() == {"start": 9, "end": 24, "entity": "EMAIL", "score": 0.9512, "source": "rules"}
    assert len(span) == 15


def test_every_builtin_entity_has_a_specificity_rank_and_user_entities_come_last() -> None:
    assert set(SPECIFICITY) == {str(entity) for entity in veil.Entity}
    assert specificity_rank("EMPLOYEE_ID") > max(specificity_rank(str(e)) for e in veil.Entity)


def test_redact_replaces_each_span_with_its_entity_and_keeps_the_rest() -> None:
    text = "Mail jean@exemple.ca or call 514-555-0199."
    spans = veil.Engine().detect(text)
    assert veil.redact(text, spans) == "Mail [EMAIL] or call [PHONE]."
    assert veil.redact(text, spans, template="<{entity}>") == "Mail <EMAIL> or call <PHONE>."


def test_redact_refuses_overlapping_spans() -> None:
    with pytest.raises(ValueError, match="non-overlapping"):
        veil.redact("abcdef", [Span(0, 4, "X_ID", 0.5), Span(2, 6, "Y_ID", 0.5)])
