"""Load spaCy's French pipeline in a fraction of the time: a compact form of its `token_match`.

spaCy's French tokenizer keeps hyphenated and elided words whole ("anti-inflammatoire",
"peut-être", "c'est-à-dire") with one regular expression of about 200 alternatives, compiled
case-insensitively, each repeating spaCy's list of letters (`ALPHA_LOWER`, some 7,000
characters of ranges). That is a 1.4-MB pattern, and Python's regular-expression compiler, which
is written in Python, spends about 3 seconds on it — twice: when `spacy.lang.fr` is imported and
when the model's tokenizer is read from disk (a cache hit the second time). That was most of
veil's model-load time.

While the French pipeline loads, `compact_token_match()` rewrites that one pattern before it is
compiled: each class listing spaCy's letters becomes "any Unicode letter or combining mark"
(`[^\\W\\d_]` and the combining-mark blocks, so decomposed accents count), the rest of the
pattern is untouched. The result compiles in milliseconds. It treats every cased letter and
combining mark spaCy lists as spaCy does (tested against the shipped pattern, character by
character, see tests/core/test_ner_spacy_fast.py). It differs only on characters no English or
French word holds: spaCy's list also has symbols, digits of other scripts and unassigned code
points, which no longer keep a hyphenated French word whole, and it lacks a few uncased letters
(such as "ƻ"), which now do; and a word written with decomposed accents (NFD: "e" + U+0301) is
kept whole as its composed form is, where spaCy's list splits it.

Any other pattern compiled meanwhile, in any thread, goes to `re.compile` unchanged. Set
`VEIL_SPACY_EXACT_TOKEN_MATCH=1` to load spaCy's pattern as it is.

`import_spacy()` imports spaCy without its command-line interface: `spacy/__init__.py` imports
`spacy.cli.info` only to offer `spacy.info()`, and with it every CLI command and their libraries
(typer, weasel, …), a second of start-up a library never uses. While spaCy is imported, a
placeholder stands in for `spacy.cli`; it is removed afterwards, so `import spacy.cli` later
imports the real one, and `spacy.info()` imports it on first call. If spaCy is already imported,
nothing happens.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
"""Combining marks: a decomposed (NFD) "é" is "e" followed by U+0301."""
LETTER = f"(?:[^\\W\\d_]|[{MARKS}])"
_CLI = ("spacy.cli", "spacy.cli.info")
# Only spaCy's French token_match is this long and starts so; everything else passes through.
_MIN_LENGTH = 100_000
_PREFIX = "(?iu)"
_CLASS = re.compile(r"\[((?:\\.|[^\]\\])*)\]")
_patching = threading.Lock()


def _letter_sets() -> tuple[str, ...]:
    from spacy.lang.char_classes import ALPHA, ALPHA_LOWER, ALPHA_UPPER  # noqa: PLC0415, TID251

    return tuple(sorted({ALPHA, ALPHA_LOWER, ALPHA_UPPER}, key=len, reverse=True))


def compact_pattern(pattern: str, letter_sets: tuple[str, ...] | None = None) -> str:
    """`pattern` with every character class that lists spaCy's letters rewritten to match any letter.

    `[<letters>]` becomes LETTER; `[<others><letters>]` becomes `(?:[<others>]|LETTER)`, which
    matches one character as the class did (a group without a quantifier inside)."""
    sets = letter_sets if letter_sets is not None else _letter_sets()

    def rewrite(match: re.Match[str]) -> str:
        inner = match.group(1)
        if inner.startswith("^"):
            return match.group(0)  # a negated class: leave it as spaCy wrote it
        for letters in sets:
            if letters in inner:
                rest = inner.replace(letters, "")
                for other in sets:  # a class may list both ALPHA_LOWER and ALPHA_UPPER
                    rest = rest.replace(other, "")
                return f"(?:[{rest}]|{LETTER})" if rest else LETTER
        return match.group(0)

    return _CLASS.sub(rewrite, pattern)


@lru_cache(maxsize=4)
def _compact_once(pattern: str, letter_sets: tuple[str, ...]) -> str:
    """spaCy compiles the pattern twice (language defaults, then the model's tokenizer): rewrite it once."""
    return compact_pattern(pattern, letter_sets)


def _is_token_match(pattern: object, letter_sets: tuple[str, ...]) -> bool:
    return (
        isinstance(pattern, str)
        and len(pattern) > _MIN_LENGTH
        and pattern.startswith(_PREFIX)
        and any(letters in pattern for letters in letter_sets)
    )


@contextmanager
def compact_token_match() -> Iterator[None]:
    """While the block runs (loading a spaCy pipeline), compile spaCy's French token_match compactly."""
    if os.environ.get("VEIL_SPACY_EXACT_TOKEN_MATCH", "") not in ("", "0"):
        yield
        return
    letter_sets = _letter_sets()
    with _patching:
        original: Callable[..., Any] = re.compile

        def compile_compact(pattern: Any, flags: Any = 0) -> Any:
            if _is_token_match(pattern, letter_sets):
                pattern = _compact_once(pattern, letter_sets)
            return original(pattern, flags)

        re.compile = compile_compact
        try:
            yield
        finally:
            re.compile = original


def import_spacy() -> Any:
    """The spacy module, imported without its CLI when this process has not imported it yet."""
    import sys  # noqa: PLC0415
    import types  # noqa: PLC0415

    if "spacy" in sys.modules or any(name in sys.modules for name in _CLI):
        import spacy  # noqa: PLC0415, TID251

        return spacy

    def info(*args: Any, **kwargs: Any) -> Any:
        import importlib  # noqa: PLC0415

        return importlib.import_module("spacy.cli.info").info(*args, **kwargs)

    package = types.ModuleType("spacy.cli", "placeholder while spaCy is imported by veil (see veil.detect.ner)")
    package.__path__ = []
    module = types.ModuleType("spacy.cli.info")
    module.info = info  # type: ignore[attr-defined]
    placeholders = {"spacy.cli": package, "spacy.cli.info": module}
    sys.modules.update(placeholders)
    try:
        import spacy  # noqa: PLC0415, TID251
    finally:
        for name, placeholder in placeholders.items():
            if sys.modules.get(name) is placeholder:
                del sys.modules[name]
        spacy_module = sys.modules.get("spacy")
        if spacy_module is not None and getattr(spacy_module, "cli", None) is package:
            delattr(spacy_module, "cli")
    return spacy
