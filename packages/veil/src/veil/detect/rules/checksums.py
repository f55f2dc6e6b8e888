"""Check digits and value checks shared by the rule modules.

python-stdnum does the standard algorithms (Luhn, mod 97, ISO 7064, national identifiers);
what lives here is only what stdnum does not have (RAMQ, OHIP/BC PHN specifics, date parts)
and thin helpers to feed it the digits of a formatted match.
"""

from __future__ import annotations

import datetime as dt

from stdnum import luhn as _luhn


def digits_of(value: str) -> str:
    """The ASCII digits of a value, in order: `"046 454-286"` → `"046454286"`."""
    return "".join(ch for ch in value if "0" <= ch <= "9")


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
    return bool(digits) and _luhn.is_valid(digits)


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
