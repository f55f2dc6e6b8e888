"""Presidio as a veil detector: for teams that already run Presidio recognizers.

Extra `veil[presidio]`. Wrap an `AnalyzerEngine` you have configured, or a list of Presidio
recognizers (a `PatternRecognizer` for an in-house identifier, a custom `EntityRecognizer`):

    PresidioDetector(analyzer)                          # your engine, as it is
    PresidioDetector(recognizers=[employee_id_recognizer])

Presidio's entity names are mapped to veil's (`PHONE_NUMBER` → `PHONE`, `EMAIL_ADDRESS` →
`EMAIL` …); names without a veil counterpart are kept as they are (`US_SSN`), so a policy may
select them. Presidio's PERSON, LOCATION and ORGANIZATION go through veil's fusion like any
model's. Built with recognizers only, the detector runs them without an NLP model (no spaCy
pipeline is loaded); recognizers that need NLP artefacts then see none.

The analyzer is built once, at construction, and shared: Presidio's own postprocessor builds a
new analyzer per call, which reloads spaCy every time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from veil.entities import Entity, Language, Span
from veil.errors import ModelUnavailable

EXTRA = "veil[presidio]"

PRESIDIO_TO_VEIL: Mapping[str, str] = {
    "PERSON": Entity.PERSON,
    "LOCATION": Entity.LOCATION,
    "ORGANIZATION": Entity.ORGANIZATION,
    "NRP": Entity.ORGANIZATION,
    "EMAIL_ADDRESS": Entity.EMAIL,
    "PHONE_NUMBER": Entity.PHONE,
    "URL": Entity.URL,
    "IP_ADDRESS": Entity.IP_ADDRESS,
    "CREDIT_CARD": Entity.CREDIT_CARD,
    "IBAN_CODE": Entity.IBAN,
    "DATE_TIME": Entity.DATE,
}


class PresidioDetector:
    """Spans from a Presidio `AnalyzerEngine` (or from Presidio recognizers).

    `entities` limits what Presidio is asked for (Presidio names); `score_threshold` is
    Presidio's own cut-off (veil's policy thresholds apply afterwards as for any detector).
    """

    name = "presidio"
    kind = "ner"
    language_sensitive = True

    def __init__(
        self,
        analyzer: Any = None,
        *,
        recognizers: Iterable[Any] | None = None,
        entity_map: Mapping[str, str] | None = None,
        entities: Sequence[str] | None = None,
        score_threshold: float = 0.0,
        languages: Sequence[Language] = ("en", "fr"),
    ) -> None:
        if (analyzer is None) == (recognizers is None):
            raise ValueError("PresidioDetector takes an analyzer or recognizers, not both and not neither")
        self.analyzer = analyzer if analyzer is not None else _analyzer(list(recognizers or ()), languages)
        if not callable(getattr(self.analyzer, "analyze", None)):
            raise TypeError("PresidioDetector(analyzer=…) takes a presidio_analyzer.AnalyzerEngine")
        self.entity_map = dict(PRESIDIO_TO_VEIL if entity_map is None else entity_map)
        self.presidio_entities = list(entities) if entities is not None else None
        self.score_threshold = score_threshold
        supported = getattr(self.analyzer, "supported_languages", None)
        self.languages: frozenset[str] = frozenset(supported) if supported else frozenset(languages)

    def describe(self) -> dict[str, str]:
        return {"languages": ", ".join(sorted(self.languages))}

    def detect(self, text: str, language: Language) -> list[Span]:
        if language not in self.languages:
            # Presidio raises for a language it was not built for; English patterns still apply.
            if "en" not in self.languages:
                raise ModelUnavailable(f"the Presidio analyzer has no recognizers for language {language!r}")
            language = "en"
        results = self.analyzer.analyze(
            text=text, language=language, entities=self.presidio_entities, score_threshold=self.score_threshold
        )
        spans = []
        for result in results:
            entity = self.entity_map.get(result.entity_type, result.entity_type)
            if result.end > result.start:
                spans.append(Span(result.start, result.end, entity, min(1.0, max(0.0, float(result.score))), self.name))
        return sorted(spans)


def _analyzer(recognizers: list[Any], languages: Sequence[Language]) -> Any:
    if not recognizers:
        raise ValueError("PresidioDetector(recognizers=…) needs at least one recognizer")
    try:
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry  # noqa: PLC0415
        from presidio_analyzer.nlp_engine import NoOpNlpEngine  # noqa: PLC0415
    except ImportError as exc:
        raise ModelUnavailable(f"presidio-analyzer is not installed: pip install '{EXTRA}'") from exc
    wanted = sorted({r.supported_language for r in recognizers} | set(languages))
    registry = RecognizerRegistry(supported_languages=wanted)
    for recognizer in recognizers:
        registry.add_recognizer(recognizer)
    nlp = NoOpNlpEngine(models=[{"lang_code": lang, "model_name": "none"} for lang in wanted])
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=wanted)
