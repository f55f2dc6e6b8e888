"""A span that loses an overlap keeps what the winner does not cover: no part of a value reaches
the model because another detector claimed its first half.

Each case below is an input on which the engine once dropped the losing span whole, leaving the
rest of the value in plaintext (found by a randomised scan of glued identifiers; see
docs/reliability.md). The leaked part is what the assertion looks for.
"""

from __future__ import annotations

import pytest

import veil
from veil import Span
from veil.detect import resolve_overlaps

LEAKS = [
    # A URL ends inside a health card number: the card's digits stayed.
    ("strict", "(514) 555-0199 https://exemple.ca/dossier?id=42/TREM 8557 1412:", "8557 1412"),
    ("permissive", "jean.roy@exemple.ca/https://exemple.ca/dossier?id=42-TREM 8557 1412:", "8557 1412"),
    # An API key glued to an IBAN: the IBAN's country code went with the key, its digits stayed.
    ("permissive", "sk-proj-abcdefghijklmnopqrstuvwxyz012345-FR76 3000 6000 0112 3456 7890 189-", "3000 6000 0112"),
    # … or to an IP address.
    ("strict", "sk-proj-abcdefghijklmnopqrstuvwxyz012345-192.168.10.20/July 28, 1993", "168.10.20"),
    # A URL whose query runs into a phone number.
    ("permissive", "https://exemple.ca/dossier?id=42-12:+1 438 555 0142.", "438 555 0142"),
    # An e-mail whose local part starts with the year of a date.
    ("strict", "July 28, 1993.jean.roy@exemple.ca.", "July 28"),
    # A French social security number glued to an e-mail.
    ("strict", "1 93 02 35 486 714 41-jean.roy@exemple.ca tel", "486 714"),
]


@pytest.mark.parametrize(("mode", "text", "leaked"), LEAKS)
def test_the_part_of_a_losing_span_that_no_winner_covers_never_reaches_the_model(
    mode: str, text: str, leaked: str
) -> None:
    session = veil.Veil(policy=veil.Policy(mode=mode, ner="off")).session("overlaps")
    sent = session.anonymize(text)
    assert leaked not in sent.text
    assert session.restore(sent.text) == text


def test_a_loser_keeps_its_uncovered_remainder_with_its_own_entity_and_score() -> None:
    text = "https://exemple.ca/x?id=TREM 8557 1412 end"
    url = Span(0, 28, "URL", 0.9)  # "https://exemple.ca/x?id=TREM"
    card = Span(24, 38, "CA_HEALTH_CARD", 0.8)  # "TREM 8557 1412"
    kept = resolve_overlaps([url, card], text=text)
    assert kept == [url, Span(29, 38, "CA_HEALTH_CARD", 0.8)]
    assert text[29:38] == "8557 1412"


def test_a_loser_around_a_winner_keeps_both_sides() -> None:
    text = "0123456789 abcdefghij"
    phone = Span(0, 21, "PHONE", 0.6)
    sin = Span(5, 15, "CA_SIN", 0.9)
    assert resolve_overlaps([phone, sin], text=text) == [
        Span(0, 5, "PHONE", 0.6),
        sin,
        Span(15, 21, "PHONE", 0.6),
    ]


def test_a_remainder_too_short_to_identify_anyone_is_not_kept() -> None:
    text = "1 93 02 35 486 714 41.1"
    nir = Span(0, 21, "FR_NIR", 0.9)
    phone = Span(5, 23, "PHONE", 0.5)  # "02 35 486 714 41.1": leaves ".1" uncovered
    assert resolve_overlaps([nir, phone], text=text) == [nir]
    # A quantity before a card: the phone-like run "123 4111 1111" keeps nothing.
    text = "qty 123 4111 1111 1111 1111"
    card = Span(8, 27, "CREDIT_CARD", 0.95)
    phone = Span(4, 17, "PHONE", 0.5)
    assert resolve_overlaps([card, phone], text=text) == [card]


def test_a_remainder_of_three_letters_is_kept_it_can_be_a_surname() -> None:
    text = "contact: jean.roy@exemple.ca Roy"
    email = Span(9, 28, "EMAIL", 0.95)
    person = Span(14, 32, "PERSON", 0.7)
    assert resolve_overlaps([email, person], text=text) == [email, Span(29, 32, "PERSON", 0.7)]


def test_remainders_are_trimmed_of_separators_and_stay_disjoint_from_every_kept_span() -> None:
    text = "aaaa-bbbb-cccc-dddd"
    spans = [Span(0, 4, "SECRET", 0.95), Span(13, 19, "EMAIL", 0.9), Span(2, 16, "PHONE", 0.5)]
    kept = resolve_overlaps(spans, text=text)
    assert [(s.entity, text[s.start : s.end]) for s in kept] == [
        ("SECRET", "aaaa"),
        ("PHONE", "bbbb-ccc"),  # "-bbbb-ccc" uncovered: the leading dash is not part of a value
        ("EMAIL", "c-dddd"),
    ]
