"""What replaces PII in the text: for now irreversible redaction (`[EMAIL]`).

Reversible tokens (`{{EMAIL_1}}`) and surrogates come with the vault; they will live here too.
"""

from __future__ import annotations

from collections.abc import Iterable

from veil.entities import Span

DEFAULT_REDACTION = "[{entity}]"


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
