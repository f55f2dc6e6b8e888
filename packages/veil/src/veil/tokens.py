"""What replaces PII in the text: tokens (`{{EMAIL_1}}`) by default, or irreversible redaction.

Token grammar: `{{` + entity name (`[A-Z][A-Z0-9_]*`) + `_` + a number without leading zeros
+ `}}`. It is stable for language models (they copy it), never collides with natural text, and
thanks to the closing braces no token is a prefix of another (`{{PERSON_1}}` vs `{{PERSON_10}}`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from veil.entities import Span

DEFAULT_REDACTION = "[{entity}]"

TOKEN_RE = re.compile(r"\{\{([A-Z][A-Z0-9_]{0,63})_([1-9][0-9]{0,9})\}\}")
"""A token exactly as veil writes it: group 1 the entity, group 2 the number."""

ENTITY_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
"""An entity name as tokens carry it (UPPER_SNAKE_CASE)."""

MAX_TOKEN_LENGTH = 2 + 64 + 1 + 10 + 2


def format_token(entity: str, number: int) -> str:
    """The token for the `number`-th value of `entity` in a scope.

    >>> format_token("EMAIL", 3)
    '{{EMAIL_3}}'
    """
    if number < 1:
        raise ValueError("token numbers start at 1")
    return f"{{{{{entity}_{number}}}}}"


@dataclass(frozen=True, slots=True)
class ParsedToken:
    entity: str
    number: int


def parse_token(token: str) -> ParsedToken | None:
    """The entity and number of a well-formed token, or None.

    >>> parse_token("{{CA_SIN_12}}")
    ParsedToken(entity='CA_SIN', number=12)
    """
    match = TOKEN_RE.fullmatch(token)
    if match is None:
        return None
    return ParsedToken(match.group(1), int(match.group(2)))


def redact(text: str, spans: Iterable[Span], template: str = DEFAULT_REDACTION) -> str:
    """Replace each span by `template` formatted with its entity. Spans must not overlap.

    >>> from veil.entities import Span
    >>> redact("Mail jean@exemple.ca now", [Span(5, 20, "EMAIL", 0.9)])
    'Mail [EMAIL] now'
    """
    pieces: list[str] = []
    position = 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start < position:
            raise ValueError("redact() needs non-overlapping spans (Engine.detect returns such spans)")
        pieces.append(text[position : span.start])
        pieces.append(template.format(entity=span.entity))
        position = span.end
    pieces.append(text[position:])
    return "".join(pieces)
