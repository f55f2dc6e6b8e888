"""Payment data: CREDIT_CARD (Luhn + issuer ranges), IBAN (mod 97, per-country length), BANK_ACCOUNT.

Cards are 13 to 19 digits, compact or in groups separated by one kind of separator; the
issuer ranges are the public IIN ranges (Visa 4, Mastercard 51–55 and 2221–2720, Amex 34/37,
Discover 6011/644–649/65, JCB 3528–3589, Diners 300–305/36/38/39, UnionPay 62). A
Luhn-valid 16- or 19-digit number outside those ranges (Interac and private-label debit
cards) counts as a card when card words are near.

IBANs are two letters, two check digits and a country-specific number of letters and digits,
compact or in groups of four; the length table below (ISO 13616 registry) lets the rule cut a
spaced IBAN where it ends instead of swallowing the next word.
"""

from __future__ import annotations

import re

from veil.detect.rules.base import LOWER_LETTER_THEN_DIGIT, Rule
from veil.detect.rules.checksums import alnum_upper, digits_of, iban_checksum_valid, luhn_digits_valid
from veil.entities import Entity

# --- CREDIT_CARD -----------------------------------------------------------------------------

_CARD_CONTEXT = (
    "card",
    "credit",
    "debit",
    "visa",
    "mastercard",
    "amex",
    "american express",
    "discover",
    "interac",
    "payment",
    "cc",
    "carte",
    "crédit",
    "débit",
    "paiement",
    "prélevez",
)

# (lowest prefix, highest prefix, allowed lengths): prefixes compared on their own digit count.
_IIN_RANGES: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("1", "1", frozenset({15})),  # UATP
    ("4", "4", frozenset({13, 16, 19})),
    ("51", "55", frozenset({16})),
    ("2221", "2720", frozenset({16})),
    ("34", "34", frozenset({15})),
    ("37", "37", frozenset({15})),
    ("6011", "6011", frozenset({16, 17, 18, 19})),
    ("644", "649", frozenset({16, 17, 18, 19})),
    ("65", "65", frozenset({16, 17, 18, 19})),
    ("3528", "3589", frozenset({16, 17, 18, 19})),
    ("300", "305", frozenset({14, 15, 16, 17, 18, 19})),
    ("36", "36", frozenset({14, 15, 16, 17, 18, 19})),
    ("38", "39", frozenset({14, 15, 16, 17, 18, 19})),
    ("62", "62", frozenset({16, 17, 18, 19})),
    ("50", "50", frozenset({12, 13, 14, 15, 16, 17, 18, 19})),
    ("56", "58", frozenset({12, 13, 14, 15, 16, 17, 18, 19})),
    ("67", "67", frozenset({12, 13, 14, 15, 16, 17, 18, 19})),
)


def _lengths_by_prefix() -> dict[str, frozenset[int]]:
    """_IIN_RANGES as a table: each prefix of one to four digits → the card lengths it allows."""
    table: dict[str, frozenset[int]] = {}
    for low, high, lengths in _IIN_RANGES:
        for prefix in range(int(low), int(high) + 1):
            key = str(prefix).zfill(len(low))
            table[key] = table.get(key, frozenset()) | lengths
    return table


_LENGTHS_BY_PREFIX = _lengths_by_prefix()
_PREFIX_SIZES = sorted({len(low) for low, _, _ in _IIN_RANGES})


def card_issuer_known(digits: str) -> bool:
    """True when the number's prefix and length fit a public issuer range.

    >>> card_issuer_known("2221000000000009"), card_issuer_known("1234567812345670")
    (True, False)
    """
    count = len(digits)
    for size in _PREFIX_SIZES:
        lengths = _LENGTHS_BY_PREFIX.get(digits[:size])
        if lengths is not None and count in lengths:
            return True
    return False


def card_digits_valid(digits: str) -> bool:
    """A card number given as its digits alone: card length, Luhn, a known issuer."""
    return 13 <= len(digits) <= 19 and card_issuer_known(digits) and luhn_digits_valid(digits)


def card_is_valid(value: str) -> bool:
    return card_digits_valid(digits_of(value))


def card_grouping_plausible(lengths: list[int]) -> bool:
    """How cards are written: compact, 4-4-4-x (13 to 16 digits), 4-4-4-4-3 (19), 4-6-5 or 4-6-4.

    >>> groupings = ([16], [4, 4, 4, 4], [4, 6, 5], [1, 16, 1], [4, 4, 4, 4, 3], [4, 4, 4, 4, 1])
    >>> [card_grouping_plausible(g) for g in groupings]
    [True, True, True, False, True, False]
    """
    if len(lengths) == 1 or lengths in ([4, 6, 5], [4, 6, 4], [4, 4, 4, 4, 3]):
        return True
    return len(lengths) == 4 and lengths[:3] == [4, 4, 4] and 1 <= lengths[3] <= 4


_DIGIT_GROUP = re.compile(r"[0-9]+")
_SEPARATOR = re.compile(r"[^0-9]")


def _refine_card(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The pattern is greedy and may run into a neighbouring number ("… 0004 130 692 544"): keep
    the longest prefix, cut at a group boundary and written with one kind of separator, that is a
    valid card; failing that, the longest such prefix of card length (scored as invalid)."""
    value = text[start:end]
    if value.isdigit():  # compact: one group, the only prefix to try is the whole match
        return (start, end) if 13 <= len(value) <= 19 else None
    if (" " in value) is not ("-" in value):
        # One kind of separator: first the whole match, as the search below would (most cards).
        groups = value.split(" " if " " in value else "-")
        digits = "".join(groups)
        lengths = [len(group) for group in groups]
        if 13 <= len(digits) <= 19 and card_grouping_plausible(lengths) and card_digits_valid(digits):
            return start, end
    groups = _DIGIT_GROUP.findall(value)
    separators = _SEPARATOR.findall(value)  # one between each two groups (the pattern's shape)
    digits = "".join(groups)
    lengths = [len(group) for group in groups]
    fallback: int | None = None
    count = len(digits)
    for last in range(len(groups) - 1, -1, -1):
        if last < len(groups) - 1:
            count -= lengths[last + 1]
        if not 13 <= count <= 19:
            continue
        if last > 1 and len(set(separators[:last])) > 1:
            continue  # "4111 1111-1111 1111" mixes separators: not how cards are written
        if not card_grouping_plausible(lengths[: last + 1]):
            continue
        stop = count + last  # each separator is one character
        if card_digits_valid(digits[:count]):
            return start, start + stop
        if fallback is None:
            fallback = stop
    return (start, start + fallback) if fallback is not None else None


CREDIT_CARD = Rule(
    name="credit_card",
    entity=Entity.CREDIT_CARD,
    pattern=r"[0-9](?:[ \-]?[0-9]){11,18}(?![0-9])",
    score=0.9,
    context=_CARD_CONTEXT,
    context_boost=0.1,
    validate=card_is_valid,
    invalid_score=0.3,
    refine=_refine_card,
    examples=(
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "2221 0000 0000 0009",
        "3782 822463 10005",
        "6011000990139424",
    ),
    counterexamples=("4111 1111 1111 1112 is not valid", "order 1234567812345678"),
)


def _other_card_is_valid(value: str) -> bool:
    digits = digits_of(value)
    return len(digits) in (16, 19) and not card_issuer_known(digits) and luhn_digits_valid(digits)


DEBIT_CARD = Rule(
    name="debit_card",
    entity=Entity.CREDIT_CARD,
    # 16 or 19 digits: compact, or in groups of four (and three) with one kind of separator.
    pattern=(
        r"[0-9]{4}(?:(?:[0-9]{4}){3}(?:[0-9]{3})?|(?: [0-9]{4}){3}(?: [0-9]{3})?"
        r"|(?:-[0-9]{4}){3}(?:-[0-9]{3})?)(?![0-9])"
    ),
    score=0.4,  # Luhn alone: 1 in 10 random numbers pass, so card words are needed in permissive mode
    context=_CARD_CONTEXT,
    context_boost=0.45,
    validate=_other_card_is_valid,
    examples=(),
)

# --- IBAN ------------------------------------------------------------------------------------

# Country code → total IBAN length (SWIFT IBAN registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BI": 27,
    "BR": 29,
    "BY": 28,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DJ": 27,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FK": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HN": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LC": 32,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "LY": 25,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MN": 20,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NI": 28,
    "NL": 18,
    "NO": 15,
    "OM": 23,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "RU": 33,
    "SA": 24,
    "SC": 31,
    "SD": 18,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "SO": 23,
    "ST": 25,
    "SV": 28,
    "TL": 23,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VA": 22,
    "VG": 24,
    "XK": 20,
    "YE": 30,
}


# Country code → a regex reading that IBAN's letters and digits (and the separators between).
_IBAN_EXTENTS: dict[str, re.Pattern[str]] = {
    country: re.compile(rf"(?:[\W_]*[^\W_]){{{length}}}") for country, length in IBAN_LENGTHS.items()
}


def _refine_iban(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Cut the match after as many letters and digits as its country's IBANs have."""
    extent = _IBAN_EXTENTS.get(text[start : start + 2].upper())
    if extent is None:
        return None
    found = extent.match(text, start, end)
    if found is None:
        return None
    stop = found.end()
    if stop < len(text) and text[stop].isalnum():
        return None  # the number goes on: not this IBAN
    return start, stop


def iban_is_valid(value: str) -> bool:
    compact = alnum_upper(value)
    length = IBAN_LENGTHS.get(compact[:2])
    return length is not None and iban_checksum_valid(compact, length)


IBAN = Rule(
    name="iban",
    entity=Entity.IBAN,
    pattern=r"[A-Z]{2}[ ]?[0-9]{2}(?:[ .\-]?[A-Za-z0-9]){11,30}",
    score=0.95,
    context=("iban", "account", "compte", "virement", "transfer", "bank", "banque"),
    context_boost=0.05,
    validate=iban_is_valid,
    invalid_score=0.3,
    refine=_refine_iban,
    examples=("FR76 3000 6000 0112 3456 7890 189", "DE89370400440532013000", "GB82 WEST 1234 5698 7654 32"),
    counterexamples=("FR76 3000 6000 0112 3456 7890 188", "the word IBAN alone"),
)

IBAN_LOWER = Rule(
    name="iban_lower",
    entity=Entity.IBAN,
    pattern=r"[a-z]{2}[0-9]{2}(?:[ ]?[a-z0-9]){11,30}",
    precheck=LOWER_LETTER_THEN_DIGIT,
    score=0.95,  # mod 97 leaves one chance in 97 to a random string of this shape
    validate=iban_is_valid,
    refine=_refine_iban,
    examples=("fr76 3000 6000 0112 3456 7890 189",),
)

# --- BANK_ACCOUNT ----------------------------------------------------------------------------

BANK_ACCOUNT = Rule(
    name="ca_bank_account",
    entity=Entity.BANK_ACCOUNT,
    # Canadian transit (5) - institution (3) - account (7 to 12), as written on cheques.
    pattern=r"[0-9]{5}[ \-][0-9]{3}[ \-][0-9]{7,12}(?![0-9])",
    score=0.45,
    context=(
        "account",
        "compte",
        "transit",
        "institution",
        "bank",
        "banque",
        "dépôt direct",
        "direct deposit",
    ),
    context_boost=0.4,
    examples=("12345-003-1234567",),
)

RULES: tuple[Rule, ...] = (CREDIT_CARD, DEBIT_CARD, IBAN, IBAN_LOWER, BANK_ACCOUNT)
