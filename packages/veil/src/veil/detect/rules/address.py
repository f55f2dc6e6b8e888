"""Street addresses (ADDRESS), English and Quebec French, with the unit, city, province (or US
state) and postal code (or ZIP code) that follow them.

The anchor is a civic number followed by a street type ("1234, rue Sainte-Catherine Ouest",
"42 Maple Ave, Apt 5", "6865, rang des Érables"); the span then extends over a unit
("app. 3", "Apt 5", "Unit 12"), and over ", City, ON H2X 1Y4" or "City (Québec) H2X 1Y4"
when a province or a postal code confirms that the words after the street are a place.
Street and city names are capitalised words; French particles (de, du, des, de la, l') may
join them. Names without a street type ("1234 Maple") are left to the NER detectors.
"""

from __future__ import annotations

import re

from veil.detect.rules.base import NUMBER_THEN_WORD, Rule, word_alternation
from veil.entities import Entity


def _with_dots(*words: str) -> tuple[str, ...]:
    """Each abbreviation with and without its dot."""
    return tuple(form for word in words for form in (word, word + "."))


_FR_TYPES = word_alternation(
    (
        *_with_dots("boul", "av", "ch"),
        *"""rue boulevard blvd bd avenue chemin rang route rte place montée montee côte cote allée allee
    impasse croissant promenade terrasse carré carre quai ruelle voie square autoroute sentier parc
    cours esplanade""".split(),
    )
)
_EN_TYPES = (
    word_alternation(
        (
            *_with_dots("St", "Ave", "Rd", "Blvd", "Cres", "Ln", "Ct", "Pl", "Pkwy", "Hwy"),
            *"""Street Avenue Road Drive Boulevard Crescent Lane Court Way Place Terrace Parkway Highway
        Circle Square Trail Close Row Line Sideroad Grove Heights Gardens Park""".split(),
        )
    )
    # "Dr" is a street only when no name follows it ("5 PM Dr Smith" is a doctor).
    + r"|Dr\.?(?![ ]+[A-Z][a-z])"
)
_DIRECTIONS = word_alternation(
    (
        *_with_dots("E", "O", "N", "S", "W"),
        *"Est Ouest Nord Sud NE NW SE SW North South East West".split(),
    )
)
_PROVINCES = word_alternation(
    (
        "Québec",
        "Quebec",
        "QC",
        "Qc",
        "Ontario",
        "ON",
        "Ont.",
        "British Columbia",
        "BC",
        "B.C.",
        "C.-B.",
        "Alberta",
        "AB",
        "Alta.",
        "Manitoba",
        "MB",
        "Man.",
        "Saskatchewan",
        "SK",
        "Sask.",
        "Nova Scotia",
        "NS",
        "N.-É.",
        "New Brunswick",
        "NB",
        "N.-B.",
        "Newfoundland and Labrador",
        "NL",
        "T.-N.-L.",
        "Prince Edward Island",
        "PE",
        "PEI",
        "Î.-P.-É.",
        "Yukon",
        "YT",
        "Northwest Territories",
        "NT",
        "Nunavut",
        "NU",
        # US states, for the English addresses of cross-border customers.
        *"""AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ
    NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY""".split(),
    )
)
_POSTAL = r"(?:[ABCEGHJ-NPRSTVXY][0-9][ABCEGHJ-NPRSTV-Z][ \-]?[0-9][ABCEGHJ-NPRSTV-Z][0-9]|[0-9]{5}(?:-[0-9]{4})?)"

_UPPER = "A-ZÀ-ÖØ-Þ"
_WORD = rf"(?:[{_UPPER}][\w'’]*(?:-[\w'’]+)*|[0-9]{{1,3}}(?:e|re|er|ième|st|nd|rd|th))"
_PARTICLE = r"(?:de[ ]la[ ]|de[ ]l['’]|des[ ]|du[ ]|de[ ]|la[ ]|le[ ]|les[ ]|l['’]|d['’]|aux[ ]|au[ ])"
_CITY = rf"[{_UPPER}][\w'’]*(?:-[\w'’]+)*(?:[ ][{_UPPER}][\w'’]*(?:-[\w'’]+)*){{0,2}}"
_PROVINCE_OR_POSTAL = rf"(?:\((?:{_PROVINCES})\)|(?:{_PROVINCES})(?![\w])|{_POSTAL}(?![\w]))"
_TAIL = (
    rf"(?:,?[ ]+{_CITY}(?=,?[ ]+{_PROVINCE_OR_POSTAL}))?"
    rf"(?:,?[ ]+(?:\((?:{_PROVINCES})\)|(?:{_PROVINCES})(?![\w])))?"
    rf"(?:,?[ ]+{_POSTAL}(?![\w]))?"
)
_CIVIC = r"[0-9]{1,5}(?:-[0-9]{1,5})?(?:[ ]?[A-Da-d](?![\w]))?"
_UNIT_FR = r"(?:,?[ ]+(?:app|appartement|apt|bureau|suite|unité|local)\.?[ ]?[#]?[0-9A-Za-z\-]{1,6}(?![\w]))?"
_UNIT_EN = r"(?:,?[ ]+(?:Apt|Apartment|Suite|Ste|Unit|Floor|#)\.?[ ]?[#]?[0-9A-Za-z\-]{1,6}(?![\w]))?"

_FR_STREET = (
    rf"{_CIVIC},?[ ]+(?i:{_FR_TYPES})[ ]+{_PARTICLE}*{_WORD}(?:[ \-]{_PARTICLE}*{_WORD}){{0,4}}"
    rf"(?:[ ]+(?:{_DIRECTIONS})(?![\w]))?"
)
_EN_STREET = rf"{_CIVIC}[ ]+(?:{_WORD}[ ]+){{1,4}}(?:{_EN_TYPES})(?![\w'’])(?:[ ]+(?:{_DIRECTIONS})(?![\w]))?"


_SPACED_GROUPS_BEFORE = re.compile(r"(?<![\w])[0-9]+[ ][0-9]+[ ]$")


def _civic_number_stands_alone(text: str, start: int, end: int) -> tuple[int, int] | None:
    """A civic number is not the last group of a longer spaced number ("130 692 544 Queen St").

    Two digit groups before it make it one; a single number before it does not ("Apt 5 1234
    Maple Ave", "unité 1 1234, rue …")."""
    if start >= 4 and text[start - 1] == " " and _SPACED_GROUPS_BEFORE.search(text, max(0, start - 40), start):
        return None
    return start, end


ADDRESS_FR = Rule(
    name="address_fr",
    entity=Entity.ADDRESS,
    pattern=_FR_STREET + _UNIT_FR + _TAIL,
    score=0.8,
    refine=_civic_number_stands_alone,
    gate=NUMBER_THEN_WORD,
    examples=(
        "1234, rue Sainte-Catherine Ouest",
        "6865, rang des Érables, Sherbrooke (Québec) T5G 8B7",
        "42 boulevard de la Montagne, app. 3, Montréal (Québec) H3G 1Z2",
    ),
    counterexamples=("la rue est belle", "3 rues plus loin"),
)

ADDRESS_EN = Rule(
    name="address_en",
    entity=Entity.ADDRESS,
    pattern=_EN_STREET + _UNIT_EN + _TAIL,
    score=0.8,
    refine=_civic_number_stands_alone,
    gate=NUMBER_THEN_WORD,
    examples=(
        "42 Maple Ave, Apt 5",
        "1234 King Street West Unit 12, Ottawa, ON K1A 0B1",
        "77 Queen St E, Toronto, ON M5C 1R6",
    ),
    counterexamples=("We met at 5 PM Dr Smith said", "3 streets away"),
)

# Exposed for the NER fusion step, which completes addresses the rules started.
PROVINCE_OR_POSTAL = re.compile(_PROVINCE_OR_POSTAL)

RULES: tuple[Rule, ...] = (ADDRESS_FR, ADDRESS_EN)
