"""What every model-based (NER) detector shares: the entities, label maps and text windows.

NER detectors sit beside the rules in the detect step: the Engine runs both and the fusion step
(`veil.detect.fusion`) reconciles them. Model libraries are imported lazily, inside the
detectors, so that `import veil` never loads spaCy, GLiNER, Presidio or torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from veil.entities import Entity

NER_ENTITIES: frozenset[str] = frozenset({Entity.PERSON, Entity.LOCATION, Entity.ORGANIZATION})
"""The entities the rules never look for and the models find."""


@dataclass(frozen=True, slots=True)
class Window:
    """`text[start:end]`, a piece of a long text handed to a model on its own."""

    start: int
    end: int


def windows(text: str, size: int, overlap: int = 0) -> Iterator[Window]:
    """Cut `text` into windows of at most `size` characters, each overlapping the previous by
    about `overlap` characters, ending at a line break or a space where one is near.

    Linear in the text. Cuts avoid the middle of a word, so a name is cut only when a window
    holds no space at all in its second half (an unbroken run of characters).

    >>> text = "alpha beta gamma delta epsilon"
    >>> [text[w.start : w.end] for w in windows(text, 16, overlap=6)]
    ['alpha beta gamma', 'beta gamma delta', 'gamma delta ', 'delta epsilon']
    """
    if size <= 0 or not 0 <= overlap < size // 2 + 1:
        raise ValueError("windows need size > 0 and 0 <= overlap <= size / 2")
    length = len(text)
    start = 0
    while start < length:
        end = min(start + size, length)
        if end < length and not text[end].isspace():
            floor = start + size // 2
            cut = max(text.rfind("\n", floor, end), text.rfind(" ", floor, end))
            if cut > start:
                end = cut + 1
        yield Window(start, end)
        if end >= length:
            return
        next_start = end - overlap
        if overlap and not text[next_start - 1].isspace():
            # Start the next window at the start of the word the overlap falls in.
            next_start = (
                max(text.rfind(" ", start + 1, next_start), text.rfind("\n", start + 1, next_start)) + 1 or next_start
            )
        start = max(next_start, start + 1)
