"""Canadian identifiers: CA_SIN, CA_HEALTH_CARD (Quebec RAMQ, Ontario OHIP, BC PHN),
CA_POSTAL_CODE, CA_QC_DRIVER_LICENCE.

- SIN (numéro d'assurance sociale): 9 digits, Luhn, never starting with 0 or 8 (stdnum.ca.sin).
  Any 9-digit number passes Luhn one time in ten, so a compact SIN needs context words in
  permissive mode; a grouped one (130 692 544) is likelier but still helped by "SIN"/"NAS".
- RAMQ (carte d'assurance maladie du Québec): 3 letters of the surname, 1 of the given name,
  then YY MM DD and 2 digits; women's months are +50 (51–62). The date part must exist.
- OHIP: 10 digits with a Luhn check digit, optionally a 1–2 letter version code.
- BC PHN: 10 digits starting with 9, mod 11 weighted check digit.
- Postal code: A1A 1A1 with the letters Canada Post uses (no D, F, I, O, Q, U; no W or Z first).
- Quebec driver's licence (SAAQ): a letter and 12 digits, written A1234-567890-12.
"""

from __future__ import annotations

from veil.detect.rules.base import LOWER_LETTER_THEN_DIGIT, Rule, not_inside_longer_number
from veil.detect.rules.checksums import day_month_plausible, digits_of, luhn_digits_valid, luhn_valid, mod11_weighted
from veil.entities import Entity

# --- SIN -------------------------------------------------------------------------------------

_SIN_CONTEXT = (
    "sin",
    "s.i.n",
    "social insurance",
    "social insurance number",
    "nas",
    "n.a.s",
    "assurance sociale",
    "numéro d'assurance sociale",
    "assurance-sociale",
)


def sin_is_valid(value: str) -> bool:
    """stdnum.ca.sin's check (nine digits, Luhn, not starting with 0 or 8) on a SIN as the rule
    matches it, with the fast Luhn: stdnum's costs ~10 µs a call through its generic cleaning,
    and every nine-digit number of a text is checked (the tests compare the two).

    >>> sin_is_valid("130 692 544"), sin_is_valid("830 692 544"), sin_is_valid("130-692-545")
    (True, False, False)
    """
    digits = digits_of(value)
    return len(digits) == 9 and digits[0] not in "08" and luhn_digits_valid(digits)


CA_SIN = Rule(
    name="ca_sin",
    entity=Entity.CA_SIN,
    pattern=r"[0-9]{3}(?:[0-9]{6}| [0-9]{3} [0-9]{3}|-[0-9]{3}-[0-9]{3})(?![0-9])",
    score=0.45,
    context=_SIN_CONTEXT,
    context_boost=0.45,
    validate=sin_is_valid,
    invalid_score=0.25,
    refine=not_inside_longer_number,
    examples=("130 692 544", "130-692-544", "130692544"),
    counterexamples=("830 692 544", "130 692 545", "call 514-555-0199 now"),
)

# --- Health cards ----------------------------------------------------------------------------

_HEALTH_CONTEXT = (
    "ramq",
    "assurance maladie",
    "assurance-maladie",
    "carte soleil",
    "health card",
    "health insurance",
    "health number",
    "carte santé",
    "ohip",
    "phn",
    "personal health number",
    "medicare",
    "msp",
)


def ramq_is_valid(value: str) -> bool:
    """RAMQ: 4 letters, then YYMMDD (+50 on the month for women) and two digits.

    >>> ramq_is_valid("TREJ 8507 1412"), ramq_is_valid("TREJ 8557 1412"), ramq_is_valid("TREJ 8513 1412")
    (True, True, False)
    """
    digits = digits_of(value)
    if len(digits) != 8:
        return False
    month, day = int(digits[2:4]), int(digits[4:6])
    if month > 50:
        month -= 50
    return 1 <= month <= 12 and day_month_plausible(month, day)


CA_HEALTH_RAMQ = Rule(
    name="ca_health_ramq",
    entity=Entity.CA_HEALTH_CARD,
    pattern=r"[A-ZÀ-ÖØ-Þ]{4}[ \u00a0]?[0-9]{4}[ \u00a0]?[0-9]{4}(?![0-9A-Za-z])",
    score=0.8,
    context=_HEALTH_CONTEXT,
    context_boost=0.15,
    validate=ramq_is_valid,
    invalid_score=0.3,
    examples=("TREJ 8507 1412", "BOUH84540185"),
    counterexamples=("TREJ 8513 1412", "ABCD 1234"),
)


def ohip_is_valid(value: str) -> bool:
    digits = digits_of(value)
    return len(digits) == 10 and luhn_valid(digits)


CA_HEALTH_OHIP = Rule(
    name="ca_health_ohip",
    entity=Entity.CA_HEALTH_CARD,
    # 10 digits (4-3-3) and an optional version code of one or two letters.
    pattern=r"[0-9]{4}(?:[0-9]{6}| [0-9]{3} [0-9]{3}|-[0-9]{3}-[0-9]{3})(?:[ \-]?[A-Z]{1,2})?(?![0-9A-Za-z])",
    score=0.35,  # ten Luhn-valid digits are also a phone number one time in ten
    context=_HEALTH_CONTEXT,
    context_boost=0.5,
    validate=ohip_is_valid,
    refine=not_inside_longer_number,
    examples=(),
)

_PHN_WEIGHTS = (2, 4, 8, 5, 10, 9, 7, 3)


def bc_phn_is_valid(value: str) -> bool:
    digits = digits_of(value)
    if len(digits) != 10 or digits[0] != "9":
        return False
    check = 11 - mod11_weighted(digits[1:9], _PHN_WEIGHTS)
    return check < 10 and check == int(digits[9])


CA_HEALTH_BC = Rule(
    name="ca_health_bc_phn",
    entity=Entity.CA_HEALTH_CARD,
    pattern=r"9[0-9]{3}(?:[0-9]{6}| [0-9]{3} [0-9]{3}|-[0-9]{3}-[0-9]{3})(?![0-9])",
    score=0.35,
    context=_HEALTH_CONTEXT,
    context_boost=0.5,
    validate=bc_phn_is_valid,
    refine=not_inside_longer_number,
)

# --- Postal code -----------------------------------------------------------------------------

_POSTAL_LETTERS_FIRST = "[ABCEGHJ-NPRSTVXY]"
_POSTAL_LETTERS = "[ABCEGHJ-NPRSTV-Z]"
_POSTAL_CONTEXT = ("postal", "code postal", "postal code", "zip", "c.p")

CA_POSTAL_CODE = Rule(
    name="ca_postal_code",
    entity=Entity.CA_POSTAL_CODE,
    # Canada Post uses no D, F, I, O, Q or U, and no W or Z in first position.
    pattern=_POSTAL_LETTERS_FIRST
    + r"[0-9]"
    + _POSTAL_LETTERS
    + r"[ \u00a0\-]?[0-9]"
    + _POSTAL_LETTERS
    + r"[0-9](?![0-9A-Za-z])",
    score=0.7,
    context=_POSTAL_CONTEXT,
    context_boost=0.2,
    examples=("H2X 1Y4", "K1A0B1", "T5G 8B7"),
    counterexamples=("D2X 1Y4", "H2X 1Y"),
)

CA_POSTAL_CODE_LOWER = Rule(
    name="ca_postal_code_lower",
    entity=Entity.CA_POSTAL_CODE,
    pattern=_POSTAL_LETTERS_FIRST.lower()
    + r"[0-9]"
    + _POSTAL_LETTERS.lower()
    + r"[ \u00a0\-]?[0-9]"
    + _POSTAL_LETTERS.lower()
    + r"[0-9](?![0-9A-Za-z])",
    precheck=LOWER_LETTER_THEN_DIGIT,
    score=0.45,
    context=_POSTAL_CONTEXT,
    context_boost=0.35,
    examples=(),
)

# --- Quebec driver's licence -----------------------------------------------------------------

CA_QC_DRIVER_LICENCE = Rule(
    name="ca_qc_driver_licence",
    entity=Entity.CA_QC_DRIVER_LICENCE,
    pattern=r"[A-Z][0-9]{4}(?:[0-9]{8}| [0-9]{6} [0-9]{2}|-[0-9]{6}-[0-9]{2})(?![0-9])",
    score=0.6,
    context=(
        "permis de conduire",
        "permis",
        "driver's licence",
        "driver's license",
        "drivers licence",
        "driver licence",
        "licence",
        "license",
        "saaq",
    ),
    context_boost=0.3,
    examples=("T1234-567890-12", "B123456789012"),
)

RULES: tuple[Rule, ...] = (
    CA_SIN,
    CA_HEALTH_RAMQ,
    CA_HEALTH_OHIP,
    CA_HEALTH_BC,
    CA_POSTAL_CODE,
    CA_POSTAL_CODE_LOWER,
    CA_QC_DRIVER_LICENCE,
)
