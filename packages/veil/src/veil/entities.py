"""Entity names, spans and languages: the values that flow out of detection.

Every detector returns `Span`s with offsets into the original text; the engine merges and
filters them, and the tokenizer (later in the data flow) replaces them. Spans are never mutated.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Language = Literal["en", "fr"]
"""A language veil has rules and context words for."""

LanguageOption = Literal["en", "fr", "auto"]
"""What a caller may ask for: a language, or `auto` to let the engine choose."""

LANGUAGES: tuple[Language, ...] = ("en", "fr")


class Entity(StrEnum):
    """Built-in entity names. User-defined patterns may add names of their own (UPPER_SNAKE_CASE)."""

    PERSON = "PERSON"
    LOCATION = "LOCATION"
    ORGANIZATION = "ORGANIZATION"
    EMAIL = "EMAIL"
    PHONE = "PHONE"
    URL = "URL"
    IP_ADDRESS = "IP_ADDRESS"
    CREDIT_CARD = "CREDIT_CARD"
    IBAN = "IBAN"
    BANK_ACCOUNT = "BANK_ACCOUNT"
    CA_SIN = "CA_SIN"
    CA_HEALTH_CARD = "CA_HEALTH_CARD"
    CA_POSTAL_CODE = "CA_POSTAL_CODE"
    CA_QC_DRIVER_LICENCE = "CA_QC_DRIVER_LICENCE"
    FR_NIR = "FR_NIR"
    DE_TAX_ID = "DE_TAX_ID"
    NL_BSN = "NL_BSN"
    BE_NATIONAL_NUMBER = "BE_NATIONAL_NUMBER"
    ES_DNI = "ES_DNI"
    IT_FISCAL_CODE = "IT_FISCAL_CODE"
    EU_VAT = "EU_VAT"
    DATE_OF_BIRTH = "DATE_OF_BIRTH"
    DATE = "DATE"
    ADDRESS = "ADDRESS"
    SECRET = "SECRET"  # noqa: S105 - the name of an entity, not a password


# When two candidates tie on score and length, the more specific entity wins. Earlier is more
# specific: a checksummed national identifier says more than a generic number shape.
SPECIFICITY: tuple[str, ...] = (
    Entity.SECRET,
    Entity.EMAIL,
    Entity.URL,
    Entity.IBAN,
    Entity.CREDIT_CARD,
    Entity.BANK_ACCOUNT,
    Entity.CA_HEALTH_CARD,
    Entity.CA_SIN,
    Entity.FR_NIR,
    Entity.CA_QC_DRIVER_LICENCE,
    Entity.IT_FISCAL_CODE,
    Entity.ES_DNI,
    Entity.BE_NATIONAL_NUMBER,
    Entity.DE_TAX_ID,
    Entity.NL_BSN,
    Entity.EU_VAT,
    Entity.IP_ADDRESS,
    Entity.DATE_OF_BIRTH,
    Entity.DATE,
    Entity.ADDRESS,
    Entity.CA_POSTAL_CODE,
    Entity.PHONE,
    Entity.PERSON,
    Entity.ORGANIZATION,
    Entity.LOCATION,
)
_SPECIFICITY_RANK = {name: rank for rank, name in enumerate(SPECIFICITY)}


# A span of a composite entity keeps the spans of its parts inside it from winning the overlap
# resolution: an address is one span, not a street and a postal code.
COMPOSITES: dict[str, frozenset[str]] = {
    Entity.ADDRESS: frozenset({Entity.CA_POSTAL_CODE, Entity.LOCATION, Entity.PERSON, Entity.ORGANIZATION}),
}


# Numbers whose shape alone (checksum passed or not) claims the digits inside them: a phone
# number is never read inside a card, an IBAN, a NIR or an IP address, even when the outer
# number fails its checksum and is itself not reported.
IDENTIFIER_SHAPES: dict[str, frozenset[str]] = {
    Entity.CREDIT_CARD: frozenset({Entity.PHONE}),
    Entity.IBAN: frozenset({Entity.PHONE}),
    Entity.FR_NIR: frozenset({Entity.PHONE}),
    Entity.IP_ADDRESS: frozenset({Entity.PHONE}),
    Entity.CA_HEALTH_CARD: frozenset({Entity.PHONE}),
}


def specificity_rank(entity: str) -> int:
    """Lower is more specific; user-defined entities rank after the built-in ones."""
    return _SPECIFICITY_RANK.get(entity, len(SPECIFICITY))


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """A piece of PII found in a text: `text[start:end]` is the value.

    `score` is the detector's confidence in [0, 1]; `source` names the detector
    (`rules`, `user:<name>`, `spacy` …) so a user can see why a span was reported.
    """

    start: int
    end: int
    entity: str
    score: float
    source: str = "rules"

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"a span needs 0 <= start < end, got {self.start}..{self.end}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"a span's score lies in [0, 1], got {self.score}")

    def __len__(self) -> int:
        return self.end - self.start

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end

    def to_dict(self) -> dict[str, object]:
        return {
            "start": self.start,
            "end": self.end,
            "entity": str(self.entity),
            "score": round(self.score, 4),
            "source": self.source,
        }


_new_object = object.__new__
_SET_FIELDS = tuple(Span.__dict__[name].__set__ for name in ("start", "end", "entity", "score", "source"))


def unchecked_span(start: int, end: int, entity: str, score: float, source: str) -> Span:
    """A `Span` from internal code that has already made sure that 0 <= start < end and that the
    score lies in [0, 1] (the rules engine, the engine's overlap resolution).

    The public constructor checks both, and the constructor a frozen dataclass generates sets
    each field through `object.__setattr__`: together twice the cost of this, for the spans
    detection makes by the thousand. Not part of the public API.
    """
    span = _new_object(Span)
    set_start, set_end, set_entity, set_score, set_source = _SET_FIELDS
    set_start(span, start)
    set_end(span, end)
    set_entity(span, entity)
    set_score(span, score)
    set_source(span, source)
    return span
