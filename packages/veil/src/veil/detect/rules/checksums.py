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

_LUHN_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")  # the digit sum of twice each digit


_NOT_DIGITS = re.compile(r"[^0-9]+")


def digits_of(value: str) -> str:
    """The ASCII digits of a value, in order: `"046 454-286"` → `"046454286"`."""
    if value.isdigit() and value.isascii():
        return value  # already compact: no regex call
    # The usual separators first (cards, SINs, then phones), at a fraction of the regex's cost.
    compact = value.replace(" ", "").replace("-", "")
    if compact.isdigit() and compact.isascii():
        return compact
    compact = compact.replace("(", "").replace(")", "").replace("+", "").replace(".", "")
    if compact.isdigit() and compact.isascii():
        return compact
    return _NOT_DIGITS.sub("", value)


_NOT_ALNUM = re.compile(r"[\W_]+")  # \w is str.isalnum() and the underscore


def alnum_upper(value: str) -> str:
    """The letters and digits of a value, upper-cased: `"fr76 3000"` → `"FR763000"`."""
    compact = value.replace(" ", "")
    if compact.isalnum():
        return compact.upper()  # grouped with blanks (IBANs): no regex call
    return _NOT_ALNUM.sub("", value).upper()


def luhn_valid(number: str) -> bool:
    """Luhn (mod 10) check over the digits of `number`.

    >>> luhn_valid("4111 1111 1111 1111")
    True
    >>> luhn_valid("4111 1111 1111 1112")
    False
    """
    digits = digits_of(number)
    return bool(digits) and luhn_digits_valid(digits)


def luhn_digits_valid(digits: str) -> bool:
    """`luhn_valid` for a string of ASCII digits only (no separators), as `digits_of` returns.

    From the right, digits in odd places count as they are, the others doubled (digit sum);
    the sums are taken over the ASCII codes, in C, less 48 a digit.

    >>> luhn_digits_valid("4111111111111111"), luhn_digits_valid("4111111111111112")
    (True, False)
    """
    codes = digits.encode()
    return (sum(codes[-1::-2]) + sum(codes[-2::-2].translate(_LUHN_DOUBLED)) - 48 * len(codes)) % 10 == 0


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
    return int(rearranged.translate(_LETTER_VALUES)) % 97 == 1


_LETTER_VALUES = {ord(letter): str(value) for value, letter in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 10)}
"""A → "10" … Z → "35", for `str.translate`: an IBAN's letters read as numbers."""


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
