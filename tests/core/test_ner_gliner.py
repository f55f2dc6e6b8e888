"""GLiNER detector: windowing, batching, label mapping and fusion.

GLiNER needs torch and model weights, neither of which the default environment has. The model
is replaced here by a small deterministic object with GLiNER's interface (`predict_entities`,
optionally `inference`), standing in for the upstream model only: windowing, offsets, label
mapping, batching and fusion are veil's code and run for real. The loading code runs for real
too: without the `gliner` package it must name the extra.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

import pytest

from veil import Engine, Policy
from veil.detect.ner.gliner import DEFAULT_LABELS, GlinerDetector
from veil.detect.rules import BUILTIN_RULES, RuleDetector
from veil.errors import ModelUnavailable


class DictionaryModel:
    """Finds the names it knows, with the label and score it was given; records its calls."""

    def __init__(self, known: dict[str, tuple[str, float]]) -> None:
        self.known = known
        self.calls: list[tuple[int, list[str], float]] = []

    def predict_entities(self, text: str, labels: list[str], threshold: float = 0.5) -> list[dict[str, Any]]:
        self.calls.append((len(text), labels, threshold))
        found = []
        for value, (label, score) in self.known.items():
            if label in labels and score >= threshold:
                for match in re.finditer(re.escape(value), text):
                    found.append(
                        {"start": match.start(), "end": match.end(), "text": value, "label": label, "score": score}
                    )
        return found


class BatchedModel(DictionaryModel):
    def __init__(self, known: dict[str, tuple[str, float]]) -> None:
        super().__init__(known)
        self.batches: list[int] = []

    def inference(self, texts: list[str], labels: list[str], threshold: float = 0.5) -> list[list[dict[str, Any]]]:
        self.batches.append(len(texts))
        return [self.predict_entities(text, labels, threshold) for text in texts]


def spans(detector: GlinerDetector, text: str) -> list[tuple[str, str, float]]:
    return [(str(s.entity), text[s.start : s.end], s.score) for s in detector.detect(text, "en")]


def test_labels_map_to_veil_entities_and_the_models_score_is_kept() -> None:
    model = DictionaryModel(
        {"Marie Tremblay": ("person", 0.93), "Desjardins": ("company", 0.71), "blue": ("colour", 0.9)}
    )
    detector = GlinerDetector(model, threshold=0.4)
    assert spans(detector, "Marie Tremblay works at Desjardins, in blue.") == [
        ("PERSON", "Marie Tremblay", 0.93),
        ("ORGANIZATION", "Desjardins", 0.71),
    ]
    assert model.calls[0][1] == list(DEFAULT_LABELS) and model.calls[0][2] == 0.4


def test_a_long_text_is_read_in_overlapping_windows_and_a_name_on_a_boundary_is_found_once() -> None:
    model = DictionaryModel({"Marie Tremblay": ("person", 0.9)})
    detector = GlinerDetector(model, window_chars=200, overlap=60)
    filler = "word " * 38  # 190 characters: the name straddles the first window's end
    text = filler + "Marie Tremblay " + filler * 3 + "Marie Tremblay."
    found = detector.detect(text, "en")
    assert [(s.start, s.end) for s in found] == [(190, 204), (len(text) - 15, len(text) - 1)]
    assert all(length <= 200 for length, _, _ in model.calls) and len(model.calls) > 3


def test_windows_go_to_the_model_in_batches_when_it_can_take_them() -> None:
    model = BatchedModel({"Jordan Johnson": ("person", 0.8)})
    detector = GlinerDetector(model, window_chars=100, overlap=20, batch_size=4)
    texts = ["Please call Jordan Johnson. " * 12, "Nothing here."]
    results = detector.detect_many(texts, ["en", "en"])
    assert model.batches and max(model.batches) <= 4 and sum(model.batches) == len(model.calls)
    assert {texts[0][s.start : s.end] for s in results[0]} == {"Jordan Johnson"}
    assert results[1] == []


def test_malformed_model_output_is_ignored_not_trusted() -> None:
    class Sloppy:
        def predict_entities(self, text: str, labels: list[str], threshold: float = 0.5) -> list[dict[str, Any]]:
            return [
                {"start": 0, "end": 999, "label": "person", "score": 0.9},
                {"start": "0", "end": 3, "label": "person", "score": 0.9},
                {"start": 0, "end": 4, "label": "person", "score": 7.0},
            ]

    assert [(s.start, s.end, s.score) for s in GlinerDetector(Sloppy()).detect("Anne went home", "en")] == [(0, 4, 1.0)]


def test_gliner_spans_are_fused_with_the_rules_like_any_models() -> None:
    model = DictionaryModel({"jean.tremblay": ("person", 0.9), "Jean Tremblay": ("person", 0.9)})
    engine = Engine(Policy(), detectors=[RuleDetector(BUILTIN_RULES), GlinerDetector(model)])
    text = "Jean Tremblay: jean.tremblay@exemple.ca"
    assert [(s.entity, text[s.start : s.end]) for s in engine.detect(text)] == [
        ("PERSON", "Jean Tremblay"),
        ("EMAIL", "jean.tremblay@exemple.ca"),
    ]


def test_configuration_mistakes_are_refused() -> None:
    with pytest.raises(TypeError, match="predict_entities"):
        GlinerDetector(object())
    with pytest.raises(ValueError, match="threshold"):
        GlinerDetector(DictionaryModel({}), threshold=1.5)
    with pytest.raises(ValueError, match="label"):
        GlinerDetector(DictionaryModel({}), labels={})


@pytest.mark.skipif(importlib.util.find_spec("gliner") is not None, reason="the gliner package is installed here")
def test_loading_without_the_gliner_package_names_the_extra() -> None:
    detector = GlinerDetector("models/gliner-pii")
    with pytest.raises(ModelUnavailable, match=r"pip install 'veil\[gliner\]'"):
        detector.detect("Marie Tremblay", "fr")
