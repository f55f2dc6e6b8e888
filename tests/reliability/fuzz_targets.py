"""Fuzz targets: each takes raw bytes, builds an input from them, runs a part of veil and checks
its contract. Anything other than the documented outcome raises, and the fuzzer reports it.

- `detect`: any text → spans sorted, disjoint, inside the text, scored in [0, 1] (both modes).
- `anonymize`: any text → restore(anonymize(text)) == text, in one session.
- `restore`: any text with tokens, mangled tokens and token-like noise → a lenient restore
  never raises, a strict one raises TokenNotFound only, and a text with no token shape comes
  back unchanged.
- `stream`: the same text cut into arbitrary chunks → the streaming restorer's output equals
  the unary restore, and each emitted prefix is a prefix of it.
- `structured`: any JSON value, chat messages and tool calls included → anonymize then restore
  gives back an equal value (tool-call arguments compared as parsed JSON).
- `sse`: any byte stream as an upstream SSE response → the server's parser (veil_server.upstream,
  read-only here) yields dicts or raises its ApiError, nothing else.

The functions are plain Python (no atheris): tests/reliability/test_fuzz.py replays the saved
regression inputs through them, and tests/reliability/fuzz.py drives them with atheris.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from functools import cache
from typing import Any

import httpx

import veil
from veil.errors import TokenNotFound
from veil.restore import Restorer, StreamingRestorer

# Pieces the structured inputs are made of: token shapes, PII values and separators.
TOKEN_PIECES = ["{{EMAIL_1}}", "{{ email_1 }}", "{EMAIL_1}", "\\{\\{PHONE_2\\}\\}", "PHONE_2", "{{PERSON_12}}",
                "{{UNKNOWN_9}}", "{{", "}}", "_1", "EMAIL_", "{", "}", "\\"]  # fmt: skip
VALUES = {"{{EMAIL_1}}": "jean.roy@exemple.ca", "{{PHONE_2}}": '(514) 555-0199 "x"\\', "{{PERSON_12}}": "Jean Roy"}


class Input:
    """Turns fuzz bytes into values, without atheris (so regressions replay anywhere)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def byte(self) -> int:
        if self.position >= len(self.data):
            return 0
        self.position += 1
        return self.data[self.position - 1]

    def text(self, limit: int = 2000) -> str:
        """The rest of the input as text: UTF-8, undecodable bytes replaced."""
        rest = self.data[self.position : self.position + limit * 4]
        self.position += len(rest)
        return rest.decode("utf-8", "replace")[:limit]

    def mixed_text(self) -> str:
        """Text where some bytes pick a token piece instead of standing for themselves."""
        pieces = []
        while self.position < len(self.data) and len(pieces) < 400:
            code = self.byte()
            if code >= 0xF0:
                pieces.append(TOKEN_PIECES[code % len(TOKEN_PIECES)])
            else:
                pieces.append(chr(code) if code < 0x80 else "éà€ \n"[code % 5])
        return "".join(pieces)


@cache
def engines() -> tuple[veil.Engine, veil.Engine]:
    return veil.Engine(veil.Policy(ner="off")), veil.Engine(veil.Policy(mode="permissive", ner="off"))


_SCOPES = itertools.count()


@cache
def shared_veil() -> veil.Veil:
    return veil.Veil(policy=veil.Policy(ner="off"), audit_traffic=False)


def _restorer(*, lenient: bool, escape: Callable[[str], str] | None = None) -> Restorer:
    return Restorer(VALUES.get, known=lambda: list(VALUES), lenient=lenient, escape=escape)


def detect(data: bytes) -> None:
    text = Input(data).text()
    for engine in engines():
        spans = engine.detect(text)
        previous_end = 0
        for span in spans:
            assert previous_end <= span.start < span.end <= len(text), (span, previous_end)
            assert 0.0 <= span.score <= 1.0, span
            previous_end = span.end


def anonymize(data: bytes) -> None:
    source = Input(data)
    text = source.mixed_text() if source.byte() % 2 else source.text()
    session = shared_veil().session(f"fuzz-{next(_SCOPES)}")  # a fresh scope: replays are exact
    sent = session.anonymize(text)
    if _one_form_per_token(sent, text):
        assert session.restore(sent.text) == text


def restore(data: bytes) -> None:
    text = Input(data).mixed_text()
    restored = _restorer(lenient=True).restore(text).text
    try:
        strict = _restorer(lenient=False).restore(text).text
    except TokenNotFound:
        pass
    else:
        assert strict == restored
    if not any(ch in text for ch in "{_"):
        assert restored == text


def stream(data: bytes) -> None:
    source = Input(data)
    escape = (lambda value: json.dumps(value)[1:-1]) if source.byte() % 2 else None
    cuts = [source.byte() % 16 for _ in range(source.byte() % 32)]
    text = source.mixed_text()
    expected = _restorer(lenient=True, escape=escape).restore(text).text
    streaming = StreamingRestorer(_restorer(lenient=True, escape=escape))
    shown, position = "", 0
    for cut in cuts:
        shown += streaming.feed(text[position : position + cut])
        assert expected.startswith(shown)
        position += cut
    shown += streaming.feed(text[position:])
    assert shown + streaming.flush() == expected


def _leaf(value: Any, path: tuple[str | int, ...]) -> str:
    """The string a replacement's path leads to (tool-call arguments parsed on the way)."""
    for step in path:
        if isinstance(value, str):
            value = json.loads(value)
        value = value[step]
    assert isinstance(value, str)
    return value


def _one_form_per_token(sent: Any, original: Any) -> bool:
    """False when one token stands for two spellings of a value ("11 11111" and "111 1111" are
    one phone; "Jean@x.ca" and "jean@x.ca" one e-mail): by design both restore as the first, so
    the round trip gives back an equivalent text, not the same one. Such inputs are checked for
    everything but that."""
    forms: dict[str, str] = {}
    for replacement in sent.replacements:
        leaf = _leaf(original, replacement.path)
        written = leaf[replacement.span.start : replacement.span.end]
        if forms.setdefault(replacement.token, written) != written:
            return False
    return True


def _normalised(value: Any) -> Any:
    """A JSON value with tool-call arguments parsed, for comparing what a walk rewrote."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "arguments" and isinstance(item, str):
                try:
                    out[key] = ("json", _normalised(json.loads(item)))
                except ValueError:
                    out[key] = item
            else:
                out[key] = _normalised(item)
        return out
    if isinstance(value, list):
        return [_normalised(item) for item in value]
    return value


def structured(data: bytes) -> None:
    source = Input(data)
    shape = source.byte() % 3
    body = source.text()
    try:
        value: Any = json.loads(body)
    except ValueError:
        value = body
    if shape == 1:  # a chat exchange with the fuzz value as content, tool arguments and tool result
        arguments = json.dumps({"query": value}, ensure_ascii=False)
        value = [
            {"role": "user", "content": body},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": body}]},
        ]  # fmt: skip
    elif shape == 2:
        value = {"metadata": value, "arguments": body, "nested": [value, {"text": body}]}
    session = shared_veil().session(f"fuzz-{next(_SCOPES)}")
    sent = session.anonymize(value)
    if _one_form_per_token(sent, value):
        assert _normalised(session.restore(sent.value)) == _normalised(value)


@cache
def _provider() -> Any:
    from veil_server.settings import ProviderSettings
    from veil_server.upstream import Provider

    return Provider("fuzz", ProviderSettings(kind="echo"))


def sse(data: bytes) -> None:
    from veil_server.errors import ApiError
    from veil_server.upstream import UpstreamStream, _HttpxAnswer

    source = Input(data)
    cuts = [source.byte() for _ in range(source.byte() % 16)]
    body = source.data[source.position :]
    pieces, position = [], 0
    for cut in cuts:
        pieces.append(body[position : position + cut])
        position += cut
    pieces.append(body[position:])

    async def run() -> None:
        response = httpx.Response(200, stream=_Chunks(pieces), headers={"content-type": "text/event-stream"})
        # The line splitter (SseLines) and the event parser are shared by both wires (httpx, aiohttp).
        upstream = UpstreamStream(_provider(), _HttpxAnswer(response))
        try:
            async for event in upstream.events():
                assert isinstance(event, dict)
        except ApiError as error:
            if not 400 <= error.status < 600:
                raise AssertionError(f"the SSE parser answered status {error.status}") from error

    asyncio.run(run())


class _Chunks(httpx.AsyncByteStream):
    """A response body arriving in the pieces the fuzzer chose."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece


TARGETS: dict[str, Callable[[bytes], None]] = {
    "detect": detect,
    "anonymize": anonymize,
    "restore": restore,
    "stream": stream,
    "structured": structured,
    "sse": sse,
}
