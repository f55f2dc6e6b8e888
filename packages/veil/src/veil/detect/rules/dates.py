"""Dates, and dates of birth: DATE and DATE_OF_BIRTH, in English and French.

Forms: numeric (03/07/1995, 07-03-1995, 03.07.1995, 1995-07-03), written day-first
("28 juillet 1993", "1er mars 2024", "28 July 1993") and month-first ("July 28, 1993",
"Jul. 28th 1993"). A date is a DATE_OF_BIRTH when birth words stand before it ("born",
"date of birth", "DOB", "né le", "née le", "date de naissance", "DDN").

Every pattern starts on a digit; a month-first date is found from its day and year and then
extended back over the month name, so that no pattern runs once per letter of the text.
"""

from __future__ import annotations

import re

from veil.detect.rules.base import NUMBER_THEN_WORD, Promotion, Rule, word_alternation
from veil.detect.rules.checksums import is_calendar_date
from veil.entities import Entity

MONTHS: dict[str, int] = {
    # English
    "january": 1,
    "jan": 1,
    "february": 2,
    "feb": 2,
    "march": 3,
    "mar": 3,
    "april": 4,
    "apr": 4,
    "may": 5,
    "june": 6,
    "jun": 6,
    "july": 7,
    "jul": 7,
    "august": 8,
    "aug": 8,
    "september": 9,
    "sep": 9,
    "sept": 9,
    "october": 10,
    "oct": 10,
    "november": 11,
    "nov": 11,
    "december": 12,
    "dec": 12,
    # French
    "janvier": 1,
    "janv": 1,
    "février": 2,
    "fevrier": 2,
    "févr": 2,
    "fev": 2,
    "mars": 3,
    "avril": 4,
    "avr": 4,
    "mai": 5,
    "juin": 6,
    "juillet": 7,
    "juil": 7,
    "août": 8,
    "aout": 8,
    "septembre": 9,
    "octobre": 10,
    "novembre": 11,
    "décembre": 12,
    "decembre": 12,
    "déc": 12,
}
_MONTH_ALTERNATION = word_alternation(MONTHS)

BIRTH_WORDS = (
    "born",
    "birth",
    "date of birth",
    "birthdate",
    "birthday",
    "dob",
    "d.o.b",
    "né",
    "née",
    "né le",
    "nee le",
    "née le",
    "naissance",
    "date de naissance",
    "ddn",
    "anniversaire",
    "né(e)",
)

_YEAR_MIN, _YEAR_MAX = 1900, 2099


def _year(text: str) -> int | None:
    year = int(text)
    if len(text) == 2:
        return 2000 + year if year < 50 else 1900 + year
    return year if _YEAR_MIN <= year <= _YEAR_MAX else None


_DATE_SEPARATOR = re.compile(r"[./\-]")


def numeric_date_is_valid(value: str) -> bool:
    """A numeric date that exists as Y-M-D, D/M/Y or M/D/Y.

    >>> [numeric_date_is_valid(v) for v in ("1995-07-03", "03/07/1995", "13/13/2020")]
    [True, True, False]
    """
    parts = _DATE_SEPARATOR.split(value)
    if len(parts) != 3:
        return False
    if len(parts[0]) == 4:
        year_text, first, second = parts[0], int(parts[1]), int(parts[2])
        year = _year(year_text)
        return year is not None and is_calendar_date(year, first, second)
    first, second = int(parts[0]), int(parts[1])
    year = _year(parts[2])
    if year is None:
        return False
    return is_calendar_date(year, second, first) or is_calendar_date(year, first, second)


_PROMOTE_DOB = Promotion(Entity.DATE_OF_BIRTH, BIRTH_WORDS, score=0.9)

NUMERIC_DATE = Rule(
    name="date_numeric",
    entity=Entity.DATE,
    pattern=r"[0-9]{1,2}(?:/[0-9]{1,2}/|-[0-9]{1,2}-)(?:[0-9]{4}|[0-9]{2})(?![0-9]|[/\-][0-9])",
    score=0.6,
    validate=numeric_date_is_valid,
    promote=_PROMOTE_DOB,
    examples=("03/07/1995", "7-3-1995", "03/07/95"),
    counterexamples=("expiry 09/29", "score 3/4", "13/13/2020"),
)

NUMERIC_DATE_DOTTED = Rule(
    name="date_numeric_dotted",
    entity=Entity.DATE,
    pattern=r"[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{4}(?![0-9]|\.[0-9])",
    score=0.6,
    validate=numeric_date_is_valid,
    promote=_PROMOTE_DOB,
    examples=("03.07.1995",),
    counterexamples=("version 1.2.3",),
)

ISO_DATE = Rule(
    name="date_iso",
    entity=Entity.DATE,
    pattern=r"[0-9]{4}(?:/[0-9]{1,2}/|-[0-9]{1,2}-)[0-9]{1,2}(?![0-9]|[/\-][0-9])",
    score=0.65,
    validate=numeric_date_is_valid,
    promote=_PROMOTE_DOB,
    examples=("1995-07-03", "2024/3/1"),
    counterexamples=("2024-13-01",),
)

_WRITTEN_DAY_FIRST = re.compile(
    rf"([0-9]{{1,2}})(?i:er|e|st|nd|rd|th)?[ \u00a0]+(?:(?i:de|of)[ \u00a0]+)?"
    rf"(?i:({_MONTH_ALTERNATION}))\.?,?[ \u00a0]+([0-9]{{4}})"
)


def written_date_is_valid(value: str) -> bool:
    match = _WRITTEN_DAY_FIRST.fullmatch(value) or _written_month_first_parts(value)
    if match is None:
        return False
    if isinstance(match, tuple):
        day, month, year = match
    else:
        day, month, year = int(match.group(1)), MONTHS[match.group(2).lower()], int(match.group(3))
    return _YEAR_MIN <= year <= _YEAR_MAX and is_calendar_date(year, month, day)


WRITTEN_DATE_DAY_FIRST = Rule(
    name="date_written_day_first",
    gate=NUMBER_THEN_WORD,
    entity=Entity.DATE,
    pattern=_WRITTEN_DAY_FIRST.pattern + r"(?![0-9])",
    score=0.7,
    validate=written_date_is_valid,
    promote=_PROMOTE_DOB,
    examples=("28 juillet 1993", "1er mars 2024", "28 July 1993", "3 févr. 2001"),
    counterexamples=("32 juillet 1993", "28 julio 1993"),
)

_MONTH_BEFORE = re.compile(rf"(?<![^\W\d_])(?i:{_MONTH_ALTERNATION})\.?[ \u00a0]+\Z")
_MONTH_FIRST = re.compile(
    rf"(?i:({_MONTH_ALTERNATION}))\.?[ \u00a0]+([0-9]{{1,2}})(?i:st|nd|rd|th)?,?[ \u00a0]+([0-9]{{4}})"
)


def _written_month_first_parts(value: str) -> tuple[int, int, int] | None:
    match = _MONTH_FIRST.fullmatch(value)
    if match is None:
        return None
    return int(match.group(2)), MONTHS[match.group(1).lower()], int(match.group(3))


def _extend_back_over_month(text: str, start: int, end: int) -> tuple[int, int] | None:
    month = _MONTH_BEFORE.search(text, max(0, start - 12), start)
    if month is None:
        return None
    return month.start(), end


WRITTEN_DATE_MONTH_FIRST = Rule(
    name="date_written_month_first",
    entity=Entity.DATE,
    pattern=r"[0-9]{1,2}(?i:st|nd|rd|th)?,?[ \u00a0]+[0-9]{4}(?![0-9])",
    score=0.7,
    validate=written_date_is_valid,
    refine=_extend_back_over_month,
    promote=_PROMOTE_DOB,
    examples=("July 28, 1993", "Jul. 28th 1993", "September 3 2001"),
    counterexamples=("page 28, 1993 edition",),
)

RULES: tuple[Rule, ...] = (
    NUMERIC_DATE,
    NUMERIC_DATE_DOTTED,
    ISO_DATE,
    WRITTEN_DATE_DAY_FIRST,
    WRITTEN_DATE_MONTH_FIRST,
)
