"""When are two written values the same value? Normalisation before the blind index.

"Jean@Exemple.ca " and "jean@exemple.ca" are one e-mail; "514-555-0199" and "+1 (514) 555 0199"
one phone; "130 692 544" and "130-692-544" one SIN. Each entity family has its rule; values of
different entities never compare equal (the entity is part of the blind index).
"""

from __future__ import annotations

import ipaddress
import unicodedata

_DIGITS_ONLY = frozenset(
    {"CREDIT_CARD", "CA_SIN", "FR_NIR", "DE_TAX_ID", "NL_BSN", "BE_NATIONAL_NUMBER", "BANK_ACCOUNT"}
)
_ALNUM_UPPER = frozenset(
    {"IBAN", "CA_HEALTH_CARD", "CA_POSTAL_CODE", "CA_QC_DRIVER_LICENCE", "ES_DNI", "IT_FISCAL_CODE", "EU_VAT"}
)


def _collapse(value: str) -> str:
    return " ".join(unicodedata.normalize("NFC", value).casefold().split())


def _phone(value: str) -> str:
    digits = "".join(ch for ch in value if ch.isdigit())
    if value.strip().startswith("+"):
        return "+" + digits
    if len(digits) == 11 and digits.startswith("1"):
        return "+" + digits  # NANP with its country code
    if len(digits) == 10 and digits[0] not in "01":
        return "+1" + digits  # NANP without it
    return digits


def normalize_value(entity: str, value: str) -> str:
    """The canonical form of a value of an entity, for the blind index.

    >>> normalize_value("EMAIL", " Jean@Exemple.CA ")
    'jean@exemple.ca'
    >>> normalize_value("PHONE", "+1 (514) 555-0199") == normalize_value("PHONE", "514.555.0199")
    True
    >>> normalize_value("IBAN", "fr76 3000 6000")
    'FR7630006000'
    """
    if entity == "EMAIL":
        return "".join(value.split()).casefold()
    if entity == "PHONE":
        return _phone(value)
    if entity in _DIGITS_ONLY:
        return "".join(ch for ch in value if ch.isdigit())
    if entity in _ALNUM_UPPER:
        return "".join(ch for ch in value if ch.isalnum()).upper()
    if entity == "IP_ADDRESS":
        try:
            return ipaddress.ip_address(value.strip().split("%", 1)[0]).compressed
        except ValueError:
            return _collapse(value)
    return _collapse(value)
