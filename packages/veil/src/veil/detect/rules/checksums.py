"""Check digits and value checks shared by the rule modules.

python-stdnum does the national identifiers. Two checks run on nearly every number of a text
and are written here for speed, tested against stdnum's own cases: Luhn (stdnum's costs
~15 µs a call through its generic cleaning) and the IBAN's mod 97 with its per-country length
(stdnum's looks the bank registry up, ~100 µs). The rest is what stdnum does not have (RAMQ,
BC PHN) and helpers to get at the digits of a formatted match.
"""

from __future__ import annotations

import datetime as dt
import re

_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")  # the digit sum of twice each digit


_NOT_DIGITS = re.compile(r"[^0-9]+")


def digits_of(value: str) -> str:
    """The ASCII digits of a value, in order: `"046 454-286"` → `"046454286"`."""
    return _NOT_DIGITS.sub("", value)


def alnum_upper(value: str) -> str:
    """The letters and digits of a value, upper-cased: `"fr76 3000"` → `"FR763000"`."""
    return "".join(ch for ch in value if ch.isalnum()).upper()


def luhn_valid(number: str) -> bool:
    """Luhn (mod 10) check over the digits of `number`.

    >>> luhn_valid("4111 1111 1111 1111")
    True
    >>> luhn_valid("4111 1111 1111 1112")
    False
    """
    digits = digits_of(number)
    if not digits:
        return False
    # From the right: digits in odd places count as they are, the others doubled (digit sum).
    total = sum(map(int, digits[-1::-2])) + sum(map(int, digits[-2::-2].translate(_LUHN_DOUBLED)))
    return total % 10 == 0


def iban_checksum_valid(compact: str, length: int) -> bool:
    """ISO 13616: the right length, letters and digits only, and mod 97 of the rearranged
    number equal to 1 (letters count as 10–35).

    >>> iban_checksum_valid("GB82WEST12345698765432", 22), iban_checksum_valid("GB82WEST12345698765433", 22)
    (True, False)
    """
    if len(compact) != length or not compact.isascii() or not compact.isalnum():
        return False
    if not (compact[:2].isalpha() and compact[2:4].isdigit()):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def is_calendar_date(year: int, month: int, day: int) -> bool:
    """True when year-month-day exists (leap years included).

    >>> is_calendar_date(2024, 2, 29), is_calendar_date(2023, 2, 29)
    (True, False)
    """
    try:
        dt.date(year, month, day)
    except ValueError:
        return False
    return True


def day_month_plausible(month: int, day: int) -> bool:
    """True when the day exists in that month in some year (29 February is allowed)."""
    return is_calendar_date(2000, month, day)


def mod11_weighted(digits: str, weights: tuple[int, ...]) -> int:
    """Weighted sum modulo 11, for the check digits that use it (BC PHN)."""
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
