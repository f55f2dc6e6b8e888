"""The detection engine: runs the detectors, applies the policy, resolves overlaps.

    text → [detectors] → candidate spans → policy (entities, thresholds, allow-list)
         → overlap resolution (higher score, then longer, then more specific) → spans

Detectors are pure and thread-safe, so one Engine serves any number of threads; `adetect`
moves long texts off the event loop. A detector that fails raises `DetectionError`: veil
fails closed and never hands back a text as if it had been checked.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from veil.detect.custom import iter_detectors
from veil.detect.language import guess_language
from veil.detect.policy import Policy
from veil.detect.rules import BUILTIN_RULES, RuleDetector
from veil.entities import COMPOSITES, IDENTIFIER_SHAPES, LANGUAGES, Language, LanguageOption, Span, specificity_rank
from veil.errors import ConfigError, DetectionError, VeilError

# Below this many characters, `adetect` runs inline: a thread hop costs more than the scan.
_INLINE_ASYNC_CHARS = 4096


@runtime_checkable
class Detector(Protocol):
    """Finds candidate spans in a text. Must be pure and thread-safe."""

    name: str

    def detect(self, text: str, language: Language) -> list[Span]: ...


def default_detectors() -> list[Detector]:
    """The detectors an Engine uses when none are given: the built-in rules."""
    return [RuleDetector(BUILTIN_RULES)]


def _rank(span: Span) -> tuple[float, int, int, int]:
    return (-span.score, -(span.end - span.start), specificity_rank(span.entity), span.start)


def _drop_chunks_of_identifiers(spans: list[Span]) -> list[Span]:
    """Remove phone-like chunks strictly inside identifier-shaped candidates, whatever their scores."""
    parts = frozenset().union(*IDENTIFIER_SHAPES.values())
    shapes = sorted((s for s in spans if s.entity in IDENTIFIER_SHAPES), key=lambda s: s.start)
    if not shapes or not any(s.entity in parts for s in spans):
        return spans
    starts = [shape.start for shape in shapes]
    # reach[i]: among shapes[0..i], the one ending furthest: one look per span, O(k log k) in all.
    reach: list[Span] = []
    for shape in shapes:
        reach.append(shape if not reach or shape.end >= reach[-1].end else reach[-1])
    kept = []
    for span in spans:
        if span.entity in parts:
            index = bisect.bisect_right(starts, span.start) - 1
            if index >= 0:
                shape = reach[index]
                if (
                    span.end <= shape.end
                    and (shape.start, shape.end) != (span.start, span.end)
                    and span.entity in IDENTIFIER_SHAPES[shape.entity]
                ):
                    continue
        kept.append(span)
    return kept


def _drop_parts_of_composites(spans: list[Span]) -> list[Span]:
    """Remove spans that lie inside a composite span (an address) of which they are a part."""
    containers = sorted((span for span in spans if span.entity in COMPOSITES), key=lambda s: s.start)
    if not containers:
        return spans
    starts = [c.start for c in containers]
    # reach[i]: the container ending furthest among containers[0..i], so one look per span.
    reach: list[Span] = []
    for container in containers:
        reach.append(container if not reach or container.end >= reach[-1].end else reach[-1])
    kept = []
    for span in spans:
        index = bisect.bisect_right(starts, span.start) - 1
        if index >= 0:
            container = reach[index]
            if container is not span and span.end <= container.end and span.entity in COMPOSITES[container.entity]:
                continue
        kept.append(span)
    return kept


def resolve_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Keep the best of overlapping spans: higher score, then longer, then more specific.

    First, parts inside a composite span (a postal code inside an address) give way to it.

    Greedy over the candidates in rank order, with the kept spans in a sorted list, so the
    cost is O(k log k) in the number of candidates.
    """
    spans = _drop_parts_of_composites(list(spans))
    kept_starts: list[int] = []
    kept: list[Span] = []
    for span in sorted(spans, key=_rank):
        index = bisect.bisect_left(kept_starts, span.start)
        if (index > 0 and kept[index - 1].end > span.start) or (index < len(kept) and kept[index].start < span.end):
            continue
        kept_starts.insert(index, span.start)
        kept.insert(index, span)
    return kept


class Engine:
    """Finds PII in text according to a Policy.

    >>> from veil import Engine
    >>> [(s.entity, s.start, s.end) for s in Engine().detect("Write to jean@exemple.ca")]
    [('EMAIL', 9, 24)]
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        detectors: Sequence[Detector] | None = None,
        language: LanguageOption = "auto",
    ) -> None:
        self.policy = policy if policy is not None else Policy()
        if language not in (*LANGUAGES, "auto"):
            raise ConfigError(f"language must be one of en, fr, auto; got {language!r}")
        self.language: LanguageOption = language
        base = list(detectors) if detectors is not None else default_detectors()
        self.detectors: tuple[Detector, ...] = (
            *base,
            *iter_detectors(self.policy.patterns, self.policy.deny),
        )
        # A detector that does not say otherwise is taken to depend on the language.
        self._language_sensitive = any(getattr(d, "language_sensitive", True) for d in self.detectors)

    def resolve_language(self, text: str, language: LanguageOption | None = None) -> Language:
        choice = language if language is not None else self.language
        if choice == "auto":
            return guess_language(text)
        if choice not in LANGUAGES:
            raise ConfigError(f"language must be one of en, fr, auto; got {choice!r}")
        return choice

    def candidates(self, text: str, language: Language) -> list[Span]:
        """Every detector's raw output, before the policy and overlap resolution."""
        found: list[Span] = []
        for detector in self.detectors:
            try:
                found.extend(detector.detect(text, language))
            except VeilError:
                raise
            except Exception as exc:
                # The message names the detector and the error type only: never the text.
                raise DetectionError(
                    f"detector {getattr(detector, 'name', type(detector).__name__)!r} failed "
                    f"({type(exc).__name__}); the text was not fully scanned"
                ) from exc
        return found

    def decide(self, text: str, candidates: Iterable[Span]) -> list[Span]:
        """Apply the policy to candidate spans and resolve their overlaps."""
        policy = self.policy
        accepted = [
            span
            for span in _drop_chunks_of_identifiers(list(candidates))
            if policy.reports(span.entity)
            and span.score >= policy.threshold_for(span.entity)
            and not policy.allows(text[span.start : span.end])
        ]
        return resolve_overlaps(accepted)

    def detect(self, text: str, language: LanguageOption | None = None) -> list[Span]:
        """The PII spans of `text`, sorted by start offset, never overlapping."""
        if not isinstance(text, str):
            raise TypeError(f"Engine.detect takes a str, got {type(text).__name__}")
        if not text:
            return []
        if (language if language is not None else self.language) == "auto" and not self._language_sensitive:
            lang: Language = "en"  # no detector reads it: skip the guess
        else:
            lang = self.resolve_language(text, language)
        return self.decide(text, self.candidates(text, lang))

    def detect_many(self, texts: Iterable[str], language: LanguageOption | None = None) -> list[list[Span]]:
        """`detect` over many texts (each routed to its own language when `auto`)."""
        return [self.detect(text, language) for text in texts]

    async def adetect(self, text: str, language: LanguageOption | None = None) -> list[Span]:
        """`detect` for async code: long texts are scanned in a worker thread."""
        if len(text) < _INLINE_ASYNC_CHARS:
            return self.detect(text, language)
        import asyncio  # noqa: PLC0415 - 40 ms of import that sync users never need

        return await asyncio.to_thread(self.detect, text, language)

    async def adetect_many(self, texts: Sequence[str], language: LanguageOption | None = None) -> list[list[Span]]:
        return [await self.adetect(text, language) for text in texts]
