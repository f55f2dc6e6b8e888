"""Language routing for `language="auto"`: English or French, cheaply.

A text is scored by the stop words of each language among its first few thousand characters,
plus French accented letters. It is linear, allocation-light and good enough to route a
message; mixed-language chat is fine because the rules carry context words of both languages.
"""

from __future__ import annotations

import re

from veil.entities import Language

_SAMPLE = 4000
_WORDS = re.compile(r"[a-zàâçéèêëîïôûùüÿœæ']+")
_EN = frozenset(
    [
        "the",
        "and",
        "is",
        "are",
        "you",
        "your",
        "to",
        "of",
        "for",
        "my",
        "with",
        "this",
        "that",
        "it",
        "on",
        "at",
        "be",
        "have",
        "from",
        "please",
        "can",
        "will",
        "was",
        "were",
        "i",
        "we",
        "he",
        "she",
        "they",
        "me",
        "our",
        "not",
        "but",
        "what",
        "when",
        "there",
        "would",
        "could",
        "should",
        "am",
        "do",
        "does",
        "did",
        "has",
        "had",
        "been",
        "an",
        "in",
        "by",
        "if",
        "so",
        "just",
        "about",
        "thanks",
        "hi",
        "hello",
        "yes",
        "please",
        "here",
        "yesterday",
        "today",
        "tomorrow",
        "account",
        "number",
        "call",
        "send",
        "need",
    ]
)
_FR = frozenset(
    [
        "le",
        "la",
        "les",
        "de",
        "des",
        "du",
        "et",
        "est",
        "un",
        "une",
        "je",
        "vous",
        "pour",
        "mon",
        "ma",
        "mes",
        "votre",
        "vos",
        "sur",
        "dans",
        "avec",
        "au",
        "aux",
        "pas",
        "que",
        "qui",
        "ce",
        "cette",
        "il",
        "elle",
        "nous",
        "ils",
        "sont",
        "être",
        "avoir",
        "merci",
        "bonjour",
        "mais",
        "ou",
        "où",
        "son",
        "sa",
        "ses",
        "suis",
        "ai",
        "avons",
        "avez",
        "ont",
        "fait",
        "peux",
        "veux",
        "voir",
        "hier",
        "demain",
        "aujourd'hui",
        "très",
        "bien",
        "aussi",
        "comme",
        "plus",
        "tout",
        "rien",
        "ici",
        "chez",
        "ne",
        "lui",
        "leur",
        "numéro",
        "compte",
        "courriel",
        "adresse",
        "svp",
        "s'il",
        "vous",
        "moi",
    ]
)
_FR_LETTERS = re.compile(r"[àâçéèêëîïôûùœ]")


def guess_language(text: str, default: Language = "en") -> Language:
    """'en' or 'fr' for a text.

    >>> guess_language("Bonjour, pouvez-vous mettre à jour mon dossier?")
    'fr'
    >>> guess_language("Please update the file for my account.")
    'en'
    """
    sample = text[:_SAMPLE].lower()
    english = french = 0
    for word in _WORDS.findall(sample):
        if word in _EN:
            english += 1
        elif word in _FR:
            french += 1
    french += (len(_FR_LETTERS.findall(sample)) + 1) // 2
    if english == french:
        return default
    return "fr" if french > english else "en"


_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")


def language_segments(text: str, default: Language) -> list[tuple[int, int, Language]]:
    """`(start, end, language)` runs that cover `text`, for a model that reads one language.

    A mixed-language chat ("Bonjour! Can you check my order?") gets one run per language;
    sentences with no signal of their own stay with their neighbours. Linear in the text.

    >>> language_segments("Merci pour votre aide. Please call me back.", "en")
    [(0, 23, 'fr'), (23, 43, 'en')]
    """
    runs: list[tuple[int, int, Language]] = []
    first_has_signal = False
    start = 0
    for brk in [*_SENTENCE_BREAK.finditer(text), None]:
        end = brk.end() if brk is not None else len(text)
        if end <= start:
            continue
        sentence = text[start:end].lower()
        english = sum(1 for w in _WORDS.findall(sentence) if w in _EN)
        french = sum(1 for w in _WORDS.findall(sentence) if w in _FR) + (len(_FR_LETTERS.findall(sentence)) + 1) // 2
        language: Language | None = None if english == french else ("fr" if french > english else "en")
        if runs and (language is None or language == runs[-1][2]):
            runs[-1] = (runs[-1][0], end, runs[-1][2])
        else:
            first_has_signal = first_has_signal or (not runs and language is not None)
            runs.append((start, end, language if language is not None else default))
        start = end
    if len(runs) > 1 and not first_has_signal:
        # Leading sentences without a signal ("Hi!") belong with what follows.
        runs[0:2] = [(runs[0][0], runs[1][1], runs[1][2])]
    return runs
