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
    french += len(_FR_LETTERS.findall(sample)) // 2
    if english == french:
        return default
    return "fr" if french > english else "en"
