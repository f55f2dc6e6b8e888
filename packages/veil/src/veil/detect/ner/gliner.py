"""GLiNER: a zero-shot NER model prompted with label names, as a veil detector.

Extra `veil[gliner]` (it pulls torch, so it is never in the default environment). GLiNER reads
a few hundred words at a time, so a long text is cut into overlapping windows (`ner.base.windows`)
and the windows go to the model in batches; a name that straddles two windows is whole in one
of them, and duplicates from the overlap are merged. Each veil entity is asked for with one or
more label prompts (`DEFAULT_LABELS`); the model's score is kept as the span's score.

Nothing is downloaded: `model` is a local directory (or an id already in the local Hugging Face
cache), loaded with `local_files_only=True`. Download a PII model once, where the network is
allowed, e.g. `huggingface-cli download urchade/gliner_multi_pii-v1 --local-dir models/gliner-pii`,
then `GlinerDetector("models/gliner-pii")`. Any object with GLiNER's `predict_entities(text,
labels, threshold=...)` method (and optionally `inference` or `batch_predict_entities` for
batches) may be passed instead of a path: an ONNX build, a fine-tuned model, a test double.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from veil.detect.ner.base import NER_ENTITIES, windows
from veil.entities import Entity, Language, Span
from veil.errors import ModelUnavailable

EXTRA = "veil[gliner]"

DEFAULT_LABELS: Mapping[str, str] = {
    "person": Entity.PERSON,
    "full name": Entity.PERSON,
    "location": Entity.LOCATION,
    "city": Entity.LOCATION,
    "address": Entity.ADDRESS,
    "organization": Entity.ORGANIZATION,
    "company": Entity.ORGANIZATION,
}
"""Label prompt → veil entity. Several prompts may name one entity."""

# GLiNER's encoders take about 384 words; 1,500 characters stays well inside that for EN/FR.
WINDOW_CHARS = 1500
WINDOW_OVERLAP = 200


class GlinerDetector:
    """Spans for the entities of `labels`, from a GLiNER model.

    >>> class Fake:  # any object with GLiNER's interface
    ...     def predict_entities(self, text, labels, threshold=0.5):
    ...         start = text.find("Marie")
    ...         return [{"start": start, "end": start + 14, "label": "person", "score": 0.93}]
    >>> [(s.entity, s.start, s.end) for s in GlinerDetector(Fake()).detect("Merci, Marie Tremblay.", "fr")]
    [('PERSON', 7, 21)]
    """

    name = "gliner"
    kind = "ner"
    language_sensitive = False  # multilingual models read any language

    def __init__(
        self,
        model: str | Path | Any,
        *,
        labels: Mapping[str, str] | None = None,
        threshold: float = 0.5,
        window_chars: int = WINDOW_CHARS,
        overlap: int = WINDOW_OVERLAP,
        batch_size: int = 8,
        onnx: bool = False,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("GlinerDetector threshold lies in [0, 1]")
        self.labels = dict(labels if labels is not None else DEFAULT_LABELS)
        if not self.labels:
            raise ValueError("GlinerDetector needs at least one label")
        self.entities = frozenset(self.labels.values())
        # Read only the sentences that could hold a name when names are all it looks for.
        self.names_only = self.entities <= NER_ENTITIES
        self.threshold = threshold
        self.window_chars = window_chars
        self.overlap = overlap
        self.batch_size = batch_size
        self._onnx = onnx
        self._source: str | Path | None = None
        self._model: Any = None
        if isinstance(model, str | Path):
            self._source = model
        else:
            if not callable(getattr(model, "predict_entities", None)):
                raise TypeError("GlinerDetector(model=…) takes a path, a model id or an object with predict_entities()")
            self._model = model
        self._lock = threading.Lock()

    def describe(self) -> dict[str, str]:
        return {"model": str(self._source) if self._source is not None else type(self._model).__name__}

    def load(self) -> Any:
        """The model, loaded from local files on first call (ModelUnavailable otherwise)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = _load(self._source, self._onnx)
        return self._model

    def detect(self, text: str, language: Language) -> list[Span]:
        return self.detect_many([text], [language])[0]

    def detect_many(self, texts: Sequence[str], languages: Sequence[Language]) -> list[list[Span]]:
        model = self.load()
        pieces = [
            (index, window.start, text[window.start : window.end])
            for index, text in enumerate(texts)
            for window in windows(text, self.window_chars, self.overlap)
        ]
        labels = list(self.labels)
        found = _predict(model, [piece for _, _, piece in pieces], labels, self.threshold, self.batch_size)
        results: list[dict[tuple[int, int, str], Span]] = [{} for _ in texts]
        for (index, offset, piece), entities in zip(pieces, found, strict=True):
            for entity in entities:
                span = self._span(entity, offset, len(piece))
                if span is not None:
                    key = (span.start, span.end, span.entity)
                    best = results[index].get(key)
                    if best is None or span.score > best.score:
                        results[index][key] = span
        return [sorted(spans.values()) for spans in results]

    def _span(self, entity: Mapping[str, Any], offset: int, length: int) -> Span | None:
        veil_entity = self.labels.get(str(entity.get("label", "")))
        start, end, score = entity.get("start"), entity.get("end"), entity.get("score", 0.0)
        if veil_entity is None or not isinstance(start, int) or not isinstance(end, int):
            return None
        if not 0 <= start < end <= length:
            return None
        return Span(offset + start, offset + end, veil_entity, min(1.0, max(0.0, float(score))), self.name)


def _predict(model: Any, texts: list[str], labels: list[str], threshold: float, batch_size: int) -> list[list[Any]]:
    if not texts:
        return []
    inference = getattr(model, "inference", None)
    batch = getattr(model, "batch_predict_entities", None)
    found: list[list[Any]] = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        if callable(inference):
            found.extend(inference(chunk, labels, threshold=threshold))
        elif callable(batch):
            found.extend(batch(chunk, labels, threshold=threshold))
        else:
            found.extend(model.predict_entities(text, labels, threshold=threshold) for text in chunk)
    if len(found) != len(texts):
        raise ModelUnavailable(f"the GLiNER model returned {len(found)} results for {len(texts)} texts")
    return found


def _load(source: str | Path | None, onnx: bool) -> Any:
    try:
        from gliner import GLiNER  # noqa: PLC0415 - the extra's library, imported when a model is needed
    except ImportError as exc:
        raise ModelUnavailable(f"GLiNER is not installed: pip install '{EXTRA}'") from exc
    try:
        return GLiNER.from_pretrained(str(source), local_files_only=True, load_onnx_model=onnx)
    except Exception as exc:
        # Never a download: a model that is not on disk is a configuration error.
        raise ModelUnavailable(
            f"GLiNER model {str(source)!r} cannot be loaded from local files ({type(exc).__name__}); "
            "download it once (huggingface-cli download <id> --local-dir <dir>) and pass the directory"
        ) from exc
