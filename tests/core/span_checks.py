"""Assertions shared by the detection tests."""

from __future__ import annotations

import veil


def found(engine: veil.Engine, text: str) -> list[tuple[str, str]]:
    """(entity, exact value) of every span reported in `text`."""
    return [(span.entity, text[span.start : span.end]) for span in engine.detect(text)]


def assert_low_score_in_strict_and_absent_in_permissive(
    strict: veil.Engine, permissive: veil.Engine, text: str, entity: str, value: str
) -> None:
    """A value that fails its checksum: reported with a low score in strict mode, not at all in permissive."""
    spans = strict.detect(text)
    assert [(s.entity, text[s.start : s.end]) for s in spans] == [(entity, value)]
    assert spans[0].score < 0.5
    assert permissive.detect(text) == []
