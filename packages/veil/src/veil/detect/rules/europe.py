"""European identifiers: FR_NIR, DE_TAX_ID, NL_BSN, BE_NATIONAL_NUMBER, ES_DNI (DNI and NIE),
IT_FISCAL_CODE, EU_VAT. Validation is python-stdnum's.

- FR NIR (numéro de sécurité sociale): sex, YY, MM, department (2A/2B for Corsica), commune,
  order, and a key = 97 − (number mod 97). Fifteen digits with a key: strong on its own.
- DE Steuer-IdNr: 11 digits, ISO 7064 mod 11,10, one digit repeated. Weak shape: needs context.
- NL BSN: 9 digits, "11-proof". The shape of a SIN: needs context.
- BE national number: YY.MM.DD-SSS.CC, mod 97. Strong when written with its dots.
- ES DNI: 8 digits and a check letter; NIE: X/Y/Z, 7 digits, a check letter.
- IT codice fiscale: 16 characters with a check letter.
- EU VAT numbers: a member-state prefix and its national format.
"""

from __future__ import annotations

from functools import cache
from operator import mul
from typing import Any

from stdnum.be import nn as _be_nn
from stdnum.de import idnr as _de_idnr
from stdnum.es import dni as _es_dni
from stdnum.es import nie as _es_nie
from stdnum.fr import nir as _fr_nir
from stdnum.it import codicefiscale as _it_cf
from stdnum.util import get_cc_module

from veil.detect.rules.base import Rule, not_inside_longer_number
from veil.detect.rules.checksums import digits_of
from veil.entities import Entity

FR_NIR = Rule(
    name="fr_nir",
    entity=Entity.FR_NIR,
    pattern=(
        r"[12][ ]?[0-9]{2}[ ]?(?:0[1-9]|1[0-2]|[2-9][0-9])[ ]?(?:[0-9]{2}|2[ABab])"
        r"[ ]?[0-9]{3}[ ]?[0-9]{3}[ ]?[0-9]{2}(?![0-9])"
    ),
    score=0.85,
    context=(
        "sécurité sociale",
        "securite sociale",
        "sécu",
        "nir",
        "insee",
        "numéro de sécurité sociale",
        "social security",
        "carte vitale",
    ),
    context_boost=0.1,
    validate=_fr_nir.is_valid,
    invalid_score=0.3,
    examples=("1 93 02 35 486 714 41", "293022A04801503"),
    counterexamples=("1 93 02 35 486 714 42",),
)

DE_TAX_ID = Rule(
    name="de_tax_id",
    entity=Entity.DE_TAX_ID,
    pattern=r"[1-9][0-9](?:[ ]?[0-9]{3}){3}(?![0-9])",
    score=0.35,
    context=(
        "steuer-id",
        "steuerid",
        "steuer-idnr",
        "idnr",
        "steueridentifikationsnummer",
        "identifikationsnummer",
        "tax id",
        "tin",
        "steuernummer",
    ),
    context_boost=0.5,
    validate=_de_idnr.is_valid,
    refine=not_inside_longer_number,
    examples=(),
)

_BSN_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)


def bsn_is_valid(value: str) -> bool:
    """stdnum.nl.bsn's check (nine digits, not all zero, the "11-proof") on a BSN as the rule
    matches it, without stdnum's generic cleaning (~9 µs a call): every nine-digit number of a
    text is checked (the tests compare the two).

    >>> bsn_is_valid("111222333"), bsn_is_valid("1112.22.333"), bsn_is_valid("111222334")
    (True, True, False)
    """
    digits = digits_of(value)
    return len(digits) == 9 and digits != "000000000" and sum(map(mul, _BSN_WEIGHTS, map(int, digits))) % 11 == 0


NL_BSN = Rule(
    name="nl_bsn",
    entity=Entity.NL_BSN,
    pattern=r"[0-9]{4}\.?[0-9]{2}\.?[0-9]{3}(?![0-9])",
    score=0.3,
    context=("bsn", "burgerservicenummer", "sofinummer", "sofi-nummer", "citizen service number"),
    context_boost=0.55,
    validate=bsn_is_valid,
    refine=not_inside_longer_number,
)

BE_NATIONAL_NUMBER = Rule(
    name="be_national_number",
    entity=Entity.BE_NATIONAL_NUMBER,
    pattern=r"[0-9]{2}\.[0-9]{2}\.[0-9]{2}[ \-][0-9]{3}\.[0-9]{2}(?![0-9])",
    score=0.75,
    context=(
        "numéro national",
        "registre national",
        "rijksregisternummer",
        "rijksregister",
        "national number",
        "national register",
        "nn",
        "insz",
    ),
    context_boost=0.2,
    validate=_be_nn.is_valid,
    invalid_score=0.3,
    examples=("85.07.30-033.28",),
)

BE_NATIONAL_NUMBER_COMPACT = Rule(
    name="be_national_number_compact",
    entity=Entity.BE_NATIONAL_NUMBER,
    pattern=r"[0-9]{2}[ ]?[0-9]{2}[ ]?[0-9]{2}[ ]?[0-9]{3}[ ]?[0-9]{2}(?![0-9])",
    score=0.3,
    context=BE_NATIONAL_NUMBER.context,
    context_boost=0.5,
    validate=_be_nn.is_valid,
)

ES_DNI = Rule(
    name="es_dni",
    entity=Entity.ES_DNI,
    pattern=r"[0-9]{8}[ \-]?[A-Za-z](?![0-9A-Za-z])",
    score=0.75,
    context=("dni", "documento nacional", "nif", "identidad"),
    context_boost=0.2,
    validate=_es_dni.is_valid,
    invalid_score=0.25,
    examples=("54362315-K", "54362315K"),
)

ES_NIE = Rule(
    name="es_nie",
    entity=Entity.ES_DNI,
    pattern=r"[XYZxyz][ \-]?[0-9]{7}[ \-]?[A-Za-z](?![0-9A-Za-z])",
    precheck=r"[0-9]{7}",  # seven digits in a row: most texts have none
    score=0.8,
    context=("nie", "extranjero", "dni", "nif"),
    context_boost=0.15,
    validate=_es_nie.is_valid,
    invalid_score=0.25,
    examples=("X-2482300W", "X2482300W"),
)

IT_FISCAL_CODE = Rule(
    name="it_fiscal_code",
    entity=Entity.IT_FISCAL_CODE,
    pattern=(
        r"[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]"
        r"(?![0-9A-Za-z])"
    ),
    score=0.9,
    context=("codice fiscale", "fiscal code", "cf", "code fiscal"),
    context_boost=0.1,
    validate=_it_cf.is_valid,
    invalid_score=0.3,
    examples=("RCCMNL83S18D969H",),
)

_VAT_PREFIXES = "AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK|XI"


@cache
def _vat_module(prefix: str) -> Any:
    """The stdnum module for one member state's VAT numbers, as stdnum.eu.vat picks it (Greece's
    prefix is EL, Northern Ireland's XI uses the United Kingdom's rules), loaded on first use."""
    return get_cc_module({"EL": "gr", "XI": "gb"}.get(prefix, prefix.lower()), "vat")


def vat_is_valid(value: str) -> bool:
    """stdnum.eu.vat's check on a match of the rule, handed straight to the member state's module:
    stdnum.eu.vat first cleans the number in Python, character by character, which changes
    nothing in a match (capitals, digits, blanks and dots) and costs ~2 µs; the module cleans it
    again anyway (the tests compare the two).

    >>> vat_is_valid("FR 61 954 506 077"), vat_is_valid("DE136695976"), vat_is_valid("DE136695977")
    (True, True, False)
    """
    return bool(_vat_module(value[:2]).is_valid(value))


EU_VAT = Rule(
    name="eu_vat",
    entity=Entity.EU_VAT,
    pattern=rf"(?:{_VAT_PREFIXES})[ ]?[0-9A-Z](?:[ .]?[0-9A-Z]){{7,12}}(?![0-9A-Za-z])",
    score=0.55,
    context=("vat", "tva", "ust-idnr", "umsatzsteuer", "btw", "iva", "intracommunautaire", "tax number"),
    context_boost=0.35,
    validate=vat_is_valid,
    examples=("FR 61 954 506 077", "DE136695976"),
)

RULES: tuple[Rule, ...] = (
    FR_NIR,
    DE_TAX_ID,
    NL_BSN,
    BE_NATIONAL_NUMBER,
    BE_NATIONAL_NUMBER_COMPACT,
    ES_DNI,
    ES_NIE,
    IT_FISCAL_CODE,
    EU_VAT,
)
