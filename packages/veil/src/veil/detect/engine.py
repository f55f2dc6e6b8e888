"""The detection engine: runs the detectors, applies the policy, resolves overlaps.

    text → [rules, NER] → candidate spans → policy (entities, thresholds, allow-list)
         → fusion of NER with the rules (veil.detect.fusion)
         → overlap resolution (higher score, then longer, then more specific) → spans

The default detectors are the built-in rules, plus spaCy NER when `veil[ner]` is installed
(`Policy.ner` decides). A model reads one language: with `language="auto"`, a mixed-language
text is cut into runs of one language for the NER detectors (the rules know both languages).

Detectors are pure and thread-safe, so one Engine serves any number of threads; `adetect`
moves long texts off the event loop. A detector that fails raises `DetectionError`: veil
fails closed and never hands back a text as if it had been checked.
"""

from __future__ import annotations

import bisect
import importlib.util
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from itertools import pairwise
from operator import attrgetter
from typing import Protocol, runtime_checkable

from veil.detect.custom import iter_detectors
from veil.detect.fusion import NER_SOURCE_TYPES, fuse, name_bearing_runs
from veil.detect.language import guess_language, language_segments
from veil.detect.ner.lexicon import COMMON_WORDS
from veil.detect.policy import Policy
from veil.detect.rules import BUILTIN_RULES, RuleDetector
from veil.entities import (
    COMPOSITES,
    IDENTIFIER_SHAPES,
    LANGUAGES,
    Language,
    LanguageOption,
    Span,
    specificity_rank,
    unchecked_span,
)
from veil.errors import ConfigError, DetectionError, ModelUnavailable, VeilError

# Below this many characters, `adetect` runs inline: a thread hop costs more than the scan.
_INLINE_ASYNC_CHARS = 4096
_CODE_SHAPED = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?")


@runtime_checkable
class Detector(Protocol):
    """Finds candidate spans in a text. Must be pure and thread-safe.

    Optional attributes the Engine reads: `kind = "ner"` for a model-based detector (its
    PERSON, LOCATION and ORGANIZATION spans go through fusion, and it reads one language at a
    time), `names_only = True` for one that finds nothing but names, places and organisations
    (it is then given only the sentences that could hold one), `language_sensitive = False` for
    a detector that ignores the language, and `detect_many(texts, languages)` for one that is
    faster in batches.
    """

    name: str

    def detect(self, text: str, language: Language) -> list[Span]: ...


def default_detectors(policy: Policy | None = None) -> list[Detector]:
    """The detectors an Engine uses when none are given: the built-in rules, and spaCy NER
    when `veil[ner]` is installed and the policy does not turn it off.

    Raises ModelUnavailable when the policy requires NER (`ner="required"`, or PERSON,
    LOCATION or ORGANIZATION named in `entities`) and spaCy is not installed.
    """
    policy = policy if policy is not None else Policy()
    detectors: list[Detector] = [RuleDetector(BUILTIN_RULES)]
    if policy.ner == "off":
        return detectors
    if importlib.util.find_spec("spacy") is None:
        if policy.ner_required:
            raise ModelUnavailable(
                "this policy asks for names, places or organisations, and spaCy is not installed: "
                "pip install 'veil[ner]' (or set policy.ner = 'off' for rules only)"
            )
        return detectors
    from veil.detect.ner.spacy import SpacyDetector  # noqa: PLC0415 - spaCy itself loads on first use

    lenient = policy.mode == "permissive" and not policy.ner_required
    detectors.append(SpacyDetector(on_missing="skip" if lenient else "raise"))
    return detectors


def _rank(span: Span) -> tuple[float, int, int, int]:
    return (-span.score, -(span.end - span.start), specificity_rank(span.entity), span.start)


_start = attrgetter("start")


_PARTS_OF_SHAPES: frozenset[str] = frozenset().union(*IDENTIFIER_SHAPES.values())


def _drop_chunks_of_identifiers(spans: list[Span]) -> list[Span]:
    """Remove phone-like chunks strictly inside identifier-shaped candidates, whatever their scores."""
    parts = _PARTS_OF_SHAPES
    shapes = [s for s in spans if s.entity in IDENTIFIER_SHAPES]
    if not shapes or not any(s.entity in parts for s in spans):
        return spans
    shapes.sort(key=_start)
    starts = [shape.start for shape in shapes]
    # reach[i]: among shapes[0..i], the one ending furthest: one look per span, O(k log k) in all.
    reach: list[Span] = []
    for shape in shapes:
        # On a tie the earlier (longer) shape stays: a card candidate that ends where an IBAN
        # ends must not shelter a phone equal to it from the IBAN that holds both.
        reach.append(shape if not reach or shape.end > reach[-1].end else reach[-1])
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
    containers = [span for span in spans if span.entity in COMPOSITES]
    if not containers:
        return spans
    containers.sort(key=_start)
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


# A remainder with fewer letters and digits than this, and fewer letters than the next, identifies
# no one ("123" before a card, an area code, a dot): it is left as text. Three letters can be a
# surname, so they are kept.
_MIN_REMAINDER_CHARACTERS = 4
_MIN_REMAINDER_LETTERS = 3
_SHORTEST_REMAINDER = min(_MIN_REMAINDER_CHARACTERS, _MIN_REMAINDER_LETTERS)


def _remainders(span: Span, covered: Sequence[Span], text: str | None) -> list[Span]:
    """The parts of `span` that none of `covered` (sorted, disjoint, each overlapping `span`)
    covers, trimmed of separators at both ends, with the span's entity, score and source.

    A detector that lost an overlap still found something there: the part nobody else claimed
    must not reach the model in plaintext (the tail of a health card after a URL that swallowed
    its letters). A part with fewer than four letters or digits and fewer than three letters is
    dropped: a quantity, an area code or a dot identifies no one. Without the text, every
    non-empty part is kept as it is.
    """
    pieces: list[Span] = []
    position = span.start
    for winner in (*covered, None):
        end = span.end if winner is None else min(winner.start, span.end)
        start, stop = position, end
        if text is not None:
            while start < stop and not text[start].isalnum():
                start += 1
            while stop > start and not text[stop - 1].isalnum():
                stop -= 1
            part = text[start:stop]
            keep = len(part) >= _SHORTEST_REMAINDER and (  # most parts are empty: no counting
                sum(ch.isalnum() for ch in part) >= _MIN_REMAINDER_CHARACTERS
                or sum(ch.isalpha() for ch in part) >= _MIN_REMAINDER_LETTERS
            )
        else:
            keep = stop > start
        if keep:  # a non-empty part (see above) of a valid span
            pieces.append(unchecked_span(start, stop, span.entity, span.score, span.source))
        if winner is not None:
            position = max(position, winner.end)
    return pieces


def resolve_overlaps(spans: Iterable[Span], *, text: str | None = None) -> list[Span]:
    """Keep the best of overlapping spans: higher score, then longer, then more specific; a span
    that loses keeps the parts no better span covers (see `_remainders`), so that no piece of a
    value is left in plaintext because a neighbour claimed the rest of it.

    First, parts inside a composite span (a postal code inside an address) give way to it.

    Greedy over the candidates in rank order, with the kept spans in a sorted list, so the
    cost is O(k log k) in the number of candidates (plus the overlaps each one has).
    """
    spans = sorted(spans, key=_start)
    if all(left.end <= right.start for left, right in pairwise(spans)):
        return spans  # nothing overlaps (most texts): every span is kept, as the greedy pass would
    spans = _drop_parts_of_composites(spans)
    kept_starts: list[int] = []
    kept: list[Span] = []
    for span in sorted(spans, key=_rank):
        first = bisect.bisect_left(kept_starts, span.start)
        if first > 0 and kept[first - 1].end > span.start:
            first -= 1
        last = first
        while last < len(kept) and kept[last].start < span.end:
            last += 1
        pieces = [span] if first == last else _remainders(span, kept[first:last], text)
        for piece in pieces:
            index = bisect.bisect_left(kept_starts, piece.start)
            kept_starts.insert(index, piece.start)
            kept.insert(index, piece)
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
        base = list(detectors) if detectors is not None else default_detectors(self.policy)
        self.detectors: tuple[Detector, ...] = (
            *base,
            *iter_detectors(self.policy.patterns, self.policy.deny),
        )
        # A detector that does not say otherwise is taken to depend on the language.
        self._language_sensitive = any(getattr(d, "language_sensitive", True) for d in self.detectors)
        self._is_ner = tuple(getattr(d, "kind", None) == "ner" for d in self.detectors)
        self._ner_sources = frozenset(d.name for d in self.detectors if getattr(d, "kind", None) == "ner")
        if self.policy.ner_required and not self._ner_sources:
            raise ModelUnavailable("this policy requires NER and the engine has no NER detector")

    @property
    def ner_detectors(self) -> tuple[Detector, ...]:
        """The model-based detectors (for `veil doctor` and servers that load models at start-up)."""
        return tuple(d for d in self.detectors if getattr(d, "kind", None) == "ner")

    def resolve_language(self, text: str, language: LanguageOption | None = None) -> Language:
        choice = language if language is not None else self.language
        if choice == "auto":
            return guess_language(text)
        if choice not in LANGUAGES:
            # A per-call argument: quoted only when it looks like a language code, never a text.
            shown = repr(choice) if isinstance(choice, str) and _CODE_SHAPED.fullmatch(choice) else "another value"
            raise ConfigError(f"language must be one of en, fr, auto; got {shown}")
        return choice

    def candidates(self, text: str, language: Language, *, mixed: bool = False) -> list[Span]:
        """Every detector's raw output, before the policy, fusion and overlap resolution.

        `mixed=True` lets the NER detectors read each run of one language on its own.
        """
        found: list[Span] = []
        for detector, is_ner in zip(self.detectors, self._is_ner, strict=True):
            if is_ner:
                pieces = self._pieces(detector, text, language, mixed)
                found.extend(self._run_ner(detector, [text], [pieces])[0])
            else:
                found.extend(self._run(detector, text, language))
        return found

    def _pieces(
        self, detector: Detector, text: str, language: Language, mixed: bool
    ) -> list[tuple[int, int, Language]]:
        runs = [(0, len(text), language)] if not mixed or len(text) < 40 else language_segments(text, language)
        if not getattr(detector, "names_only", False):
            return runs
        # Only the sentences that could hold a name go to the model. Permissive fusion keeps no
        # lower-case name, so there a sentence needs a capital; strict mode also reads sentences
        # with a lower-case word that is not in the dictionary ("jean tremblay").
        known = None if self.policy.mode == "permissive" else COMMON_WORDS.known
        return name_bearing_runs(text, runs, COMMON_WORDS, known)

    @staticmethod
    def _failed(detector: Detector, exc: Exception) -> DetectionError:
        # The message names the detector and the error type only: never the text.
        return DetectionError(
            f"detector {getattr(detector, 'name', type(detector).__name__)!r} failed "
            f"({type(exc).__name__}); the text was not fully scanned"
        )

    def _run(self, detector: Detector, text: str, language: Language) -> list[Span]:
        try:
            return detector.detect(text, language)
        except VeilError:
            raise
        except Exception as exc:
            raise self._failed(detector, exc) from exc

    def _run_ner(
        self, detector: Detector, texts: Sequence[str], pieces: Sequence[Sequence[tuple[int, int, Language]]]
    ) -> list[list[Span]]:
        """A NER detector over texts cut into one-language pieces, batched when it can be."""
        flat = [
            (index, start, text[start:end], lang)
            for index, text in enumerate(texts)
            for start, end, lang in pieces[index]
        ]
        try:
            batch = getattr(detector, "detect_many", None)
            if batch is not None:
                outputs = batch([piece for _, _, piece, _ in flat], [lang for _, _, _, lang in flat])
            else:
                outputs = [detector.detect(piece, lang) for _, _, piece, lang in flat]
        except VeilError:
            raise
        except Exception as exc:
            raise self._failed(detector, exc) from exc
        results: list[list[Span]] = [[] for _ in texts]
        for (index, offset, _, _), spans in zip(flat, outputs, strict=True):
            results[index].extend(
                spans if offset == 0 else (replace(s, start=s.start + offset, end=s.end + offset) for s in spans)
            )
        return results

    def decide(self, text: str, candidates: Iterable[Span], language: Language = "en") -> list[Span]:
        """Apply the policy to candidate spans, fuse NER with the rules, resolve overlaps."""
        policy = self.policy
        candidates = _drop_chunks_of_identifiers(list(candidates))
        ner_sources = self._ner_sources
        ner = [s for s in candidates if s.source in ner_sources and s.entity in NER_SOURCE_TYPES] if ner_sources else []
        rules = (
            [s for s in candidates if not (s.source in ner_sources and s.entity in NER_SOURCE_TYPES)]
            if ner
            else candidates
        )

        allows = policy.allows if policy.allow else None  # no value to cut out of the text

        def accepted(span: Span) -> bool:
            return (
                policy.reports(span.entity)
                and span.score >= policy.threshold_for(span.entity)
                and (allows is None or not allows(text[span.start : span.end]))
            )

        kept = [span for span in rules if accepted(span)]
        if ner_sources:
            kept = [
                span
                for span in fuse(text, kept, ner, language=language, mode=policy.mode, common_word=COMMON_WORDS)
                if accepted(span)
            ]
        return resolve_overlaps(kept, text=text)

    def detect(self, text: str, language: LanguageOption | None = None) -> list[Span]:
        """The PII spans of `text`, sorted by start offset, never overlapping."""
        if not isinstance(text, str):
            raise TypeError(f"Engine.detect takes a str, got {type(text).__name__}")
        if not text:
            return []
        choice = language if language is not None else self.language
        if choice == "auto" and not self._language_sensitive:
            lang: Language = "en"  # no detector reads it: skip the guess
        else:
            lang = self.resolve_language(text, language)
        return self.decide(text, self.candidates(text, lang, mixed=choice == "auto"), lang)

    def detect_many(self, texts: Iterable[str], language: LanguageOption | None = None) -> list[list[Span]]:
        """`detect` over many texts (each routed to its own language when `auto`); NER detectors
        that can (spaCy) read the whole batch at once, which is several times faster."""
        texts = list(texts)
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"Engine.detect_many takes str items, got {type(text).__name__}")
        choice = language if language is not None else self.language
        languages: list[Language] = [
            "en"
            if not text or (choice == "auto" and not self._language_sensitive)
            else self.resolve_language(text, language)
            for text in texts
        ]
        found: list[list[Span]] = [[] for _ in texts]
        live = [i for i, text in enumerate(texts) if text]
        for detector in self.detectors:
            if getattr(detector, "kind", None) == "ner":
                pieces = [self._pieces(detector, texts[i], languages[i], choice == "auto") for i in live]
                for i, spans in zip(live, self._run_ner(detector, [texts[i] for i in live], pieces), strict=True):
                    found[i].extend(spans)
            else:
                for i in live:
                    found[i].extend(self._run(detector, texts[i], languages[i]))
        return [self.decide(text, found[i], languages[i]) if text else [] for i, text in enumerate(texts)]

    async def adetect(self, text: str, language: LanguageOption | None = None) -> list[Span]:
        """`detect` for async code: long texts are scanned in a worker thread."""
        if len(text) < _INLINE_ASYNC_CHARS:
            return self.detect(text, language)
        import asyncio  # noqa: PLC0415 - 40 ms of import that sync users never need

        return await asyncio.to_thread(self.detect, text, language)

    async def adetect_many(self, texts: Sequence[str], language: LanguageOption | None = None) -> list[list[Span]]:
        return [await self.adetect(text, language) for text in texts]
