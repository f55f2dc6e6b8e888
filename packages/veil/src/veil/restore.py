"""Restore: put the original values back in place of the tokens of a model's answer.

Three forms of token are recognised, in one pass:
- exact: `{{EMAIL_1}}`, as veil wrote it;
- mangled: what models do to tokens — `{{ email_1 }}`, `{EMAIL_1}`, `{{EMAIL_1}`, Markdown-escaped
  `\\{\\{EMAIL_1\\}\\}` — restored when the canonical token exists in the scope;
- bare: `EMAIL_1` with the braces dropped, restored only when that token exists in the scope
  (so natural text such as `COVID_19` is left alone).

Every restore returns a drift report: tokens sent to the model but missing from its answer
(dropped), tokens restored from a mangled or bare form (altered), and token-shaped strings the
scope does not know (invented: made up by the model, or from another tenant or scope, which
cannot be restored here). An unknown token raises `TokenNotFound` unless the caller asked for a
lenient restore, in which case it is left as written and reported.

`StreamingRestorer` does the same over a stream of chunks: it holds back only a suffix that
could still be the start of a token (bounded by the longest token form) and emits everything
else at once, so that the concatenated output equals the restore of the whole text, and no
token is ever shown half-restored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from veil.errors import TokenNotFound
from veil.tokens import TOKEN_RE, format_token

Resolver = Callable[[str], "str | None"]
"""canonical token → its value in the scope, or None when the scope does not know it."""

# One pass: exact or mangled (group "braced"), or bare (group "bare").
_TOKEN_FORMS = re.compile(
    r"(?P<braced>(?:\\?\{){1,2}[ \t]*(?P<bname>[A-Za-z][A-Za-z0-9_]{0,63}?)_(?P<bnum>[0-9]{1,10})[ \t]*(?:\\?\}){1,2})"
    r"|(?<![A-Za-z0-9_{\\])(?P<bare>(?P<name>[A-Z][A-Z0-9_]{0,63}?)_(?P<num>[1-9][0-9]{0,9}))(?![A-Za-z0-9_}])"
)
_MAX_FORM_LENGTH = 2 * 2 + 8 + 64 + 1 + 10 + 2 * 2 + 8
_CANDIDATE_START = re.compile(r"[{\\A-Z]")


def token_shaped(text: str) -> tuple[list[tuple[int, int]], set[str]]:
    """Token-shaped strings already present in a text before anonymization: the bounds of its
    braced forms, and the set of its bare forms (`NAME_1`). Sessions protect the former (they
    become tokens of their own) and never restore the latter, so that restore(anonymize(x)) == x
    even for a text that talks about `{{EMAIL_1}}`."""
    braced: list[tuple[int, int]] = []
    bare: set[str] = set()
    if "_" not in text:
        return braced, bare
    for match in _TOKEN_FORMS.finditer(text):
        if match.group("braced") is not None:
            braced.append(match.span())
        else:
            bare.add(match.group(0))
    return braced, bare


@dataclass(frozen=True, slots=True)
class Drift:
    """How the model's answer treated the tokens it was given."""

    dropped: tuple[str, ...] = ()
    altered: tuple[str, ...] = ()
    invented: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not (self.dropped or self.altered or self.invented)

    def to_dict(self) -> dict[str, list[str]]:
        return {"dropped": list(self.dropped), "altered": list(self.altered), "invented": list(self.invented)}


@dataclass(slots=True)
class _DriftCounter:
    seen: set[str] = field(default_factory=set)
    altered: dict[str, None] = field(default_factory=dict)
    invented: dict[str, None] = field(default_factory=dict)

    def report(self, expected: Collection[str]) -> Drift:
        return Drift(
            dropped=tuple(sorted(t for t in expected if t not in self.seen)),
            altered=tuple(self.altered),
            invented=tuple(self.invented),
        )


@dataclass(frozen=True, slots=True)
class Restored:
    """A restored text and what happened to its tokens."""

    text: str
    drift: Drift
    count: int


class Restorer:
    """Restores tokens through a resolver (the scope's vault lookup)."""

    def __init__(
        self,
        resolve: Resolver,
        *,
        known: Callable[[], Collection[str]] | None = None,
        lenient: bool = False,
        escape: Callable[[str], str] | None = None,
        literal_bare: Collection[str] = (),
    ) -> None:
        """`known` lists the scope's tokens (for bare forms); `escape` transforms each restored
        value before insertion (JSON string escaping inside tool-call arguments); `literal_bare`
        are bare forms that stood in the original text and must stay as they are."""
        self._resolve = resolve
        self._known = known
        self.lenient = lenient
        self._escape = escape
        self._literal_bare = literal_bare

    def known_tokens(self) -> Collection[str]:
        return self._known() if self._known is not None else ()

    def restore(self, text: str, *, expected: Collection[str] = ()) -> Restored:
        """Restore `text`; `expected` are the tokens the model was given (for the drift report)."""
        counter = _DriftCounter()
        restored, count = self._restore(text, 0, counter)
        return Restored(restored, counter.report(expected), count)

    def _replacement(self, match: re.Match[str], counter: _DriftCounter) -> tuple[str, int] | None:
        """(the value, how many leading characters of the match are not part of the token), or None.

        A backslash right before an exact token is the text's own, not a Markdown escape of the
        token: anonymizing a text with a backslash before a token-shaped literal puts a token
        there, and restore must give the backslash back (found by fuzzing the round trip)."""
        written = match.group(0)
        skipped = 0
        if written.startswith("\\{{") and TOKEN_RE.fullmatch(written, 1):
            written, skipped = written[1:], 1
        if match.group("braced") is not None:
            number = match.group("bnum")
            canonical = format_token(match.group("bname").upper(), int(number)) if number[0] != "0" else written
        else:
            if written in self._literal_bare:
                return None
            canonical = format_token(match.group("name"), int(match.group("num")))
        value = self._resolve(canonical)
        if value is None:
            if match.group("bare") is not None:
                return None  # natural text that looks like NAME_1: not a token of ours
            counter.invented.setdefault(written)
            if not self.lenient:
                raise TokenNotFound(
                    f"token {written} is not known in this scope (made up by the model, erased, expired, "
                    "or from another tenant or scope); restore leniently to keep it as written"
                )
            return None
        counter.seen.add(canonical)
        if written != canonical:
            counter.altered.setdefault(canonical)
        return (self._escape(value) if self._escape is not None else value), skipped

    def _restore(self, text: str, start: int, counter: _DriftCounter) -> tuple[str, int]:
        pieces: list[str] = []
        position = start
        count = 0
        for match in _TOKEN_FORMS.finditer(text, start):
            found = self._replacement(match, counter)
            if found is None:
                continue
            replacement, skipped = found
            pieces.append(text[position : match.start() + skipped])
            pieces.append(replacement)
            position = match.end()
            count += 1
        pieces.append(text[position:])
        return "".join(pieces), count


def _char_class(ch: str) -> str:
    if ch == "{":
        return "open"
    if ch == "}":
        return "close"
    if ch == "\\":
        return "escape"
    if ch in " \t":
        return "space"
    if ch.isascii() and ch.isalpha():
        return "letter"
    if ch.isascii() and (ch.isdigit() or ch == "_"):
        return "name"
    return "other"


# The braced token grammar, `(\\?{){1,2} [ \t]* NAME [ \t]* (\\?}){1,2}`, as a state machine:
# state → {character class → next state}. NAME starts with a letter. State "one_close" is a
# complete token that a second closing brace could still extend; "done" cannot grow.
_BRACED: dict[str, dict[str, str]] = {
    "start": {"escape": "escaped_open", "open": "one_open"},
    "escaped_open": {"open": "one_open"},
    "one_open": {"escape": "escaped_second", "open": "two_open", "space": "before_name", "letter": "name"},
    "escaped_second": {"open": "two_open"},
    "two_open": {"space": "before_name", "letter": "name"},
    "before_name": {"space": "before_name", "letter": "name"},
    "name": {"letter": "name", "name": "name", "space": "after_name", "escape": "escaped_close", "close": "one_close"},
    "after_name": {"space": "after_name", "escape": "escaped_close", "close": "one_close"},
    "escaped_close": {"close": "one_close"},
    "one_close": {"escape": "escaped_second_close", "close": "done"},
    "escaped_second_close": {"close": "done"},
    "done": {},
}
_MAX_NAME = 76


def _braced_prefix_state(tail: str) -> str:
    """Classify `tail` against the braced token grammar: "grow" (a proper prefix of a token, or a
    token that one more character could extend), "done" (a complete token that cannot grow), or
    "no" (not a token prefix)."""
    state = "start"
    name_length = 0
    for ch in tail:
        following = _BRACED[state].get(_char_class(ch))
        if following is None:
            return "no"
        if following == "name":
            name_length += 1
            if name_length > _MAX_NAME:
                return "no"
        state = following
    return "done" if state == "done" else "grow"


class HoldBackStream:
    """The mechanics every streaming restorer shares: hold back the suffix from `_cut(buffer)`
    on, restore and emit the rest at once; the last character emitted is kept as context for
    the next piece (a word boundary can depend on it). Subclasses give `_cut` and `_restore`."""

    def __init__(self) -> None:
        self._pending = ""
        self._previous = ""
        self.count = 0

    def _cut(self, buffer: str) -> int:
        """The earliest position from which the buffer's end could still become something to restore."""
        raise NotImplementedError

    def _restore(self, text: str, start: int) -> tuple[str, int]:
        """`text[start:]` restored (what precedes `start` is context only), and how many replacements."""
        raise NotImplementedError

    def _emit(self, text: str) -> str:
        if not text:
            return ""
        restored, count = self._restore(self._previous + text, len(self._previous))
        self.count += count
        self._previous = text[-1]
        return restored

    def feed(self, chunk: str) -> str:
        """Take the next chunk; return the text that can be shown now."""
        if not chunk:
            return ""
        buffer = self._pending + chunk
        cut = self._cut(buffer)
        self._pending = buffer[cut:]
        return self._emit(buffer[:cut])

    def flush(self) -> str:
        """End of stream: return whatever was held back, restored."""
        rest, self._pending = self._pending, ""
        return self._emit(rest)


class StreamingRestorer(HoldBackStream):
    """Restores a stream chunk by chunk; see the module docstring.

    For every text and every way of cutting it into chunks, `"".join(feed(c) for c in chunks)
    + flush()` equals `Restorer.restore(text).text`, and nothing emitted is ever part of a token.
    """

    def __init__(self, restorer: Restorer, *, expected: Collection[str] = ()) -> None:
        super().__init__()
        self._restorer = restorer
        self._expected = tuple(expected)
        self._counter = _DriftCounter()
        self._known_bare: frozenset[str] | None = None

    def _bare_prefixes(self) -> frozenset[str]:
        """Every prefix of the bare forms of the scope's tokens (`E`, `EM`, … `EMAIL_1`)."""
        if self._known_bare is None:
            literal = self._restorer._literal_bare
            forms = [t[2:-2] for t in self._restorer.known_tokens() if TOKEN_RE.fullmatch(t) and t[2:-2] not in literal]
            self._known_bare = frozenset(form[:end] for form in forms for end in range(1, len(form) + 1))
        return self._known_bare

    def feed(self, chunk: str) -> str:
        if not self._pending and chunk and _CANDIDATE_START.search(chunk) is None:
            # Nothing held, and no token form can start in this chunk (each starts with `{`, `\`
            # or a capital): it is shown as it is, as the general path would show it.
            self._previous = chunk[-1]
            return chunk
        return super().feed(chunk)

    def _cut(self, buffer: str) -> int:
        low = max(0, len(buffer) - _MAX_FORM_LENGTH)
        bare_prefixes = self._bare_prefixes()
        for candidate in _CANDIDATE_START.finditer(buffer, low):
            index = candidate.start()
            ch = buffer[index]
            if ch in "{\\":
                if _braced_prefix_state(buffer[index:]) == "grow":
                    return index
            elif bare_prefixes and "A" <= ch <= "Z":
                before = buffer[index - 1] if index > 0 else self._previous
                if before and (before.isascii() and (before.isalnum() or before in "_{\\")):
                    continue
                if buffer[index:] in bare_prefixes:
                    return index
        return len(buffer)

    def _restore(self, text: str, start: int) -> tuple[str, int]:
        return self._restorer._restore(text, start, self._counter)

    @property
    def drift(self) -> Drift:
        return self._counter.report(self._expected)
