"""The upstream wires' helpers: SSE line splitting (both wires), events and the reads they came in,
and the proxy of a remote upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from veil_server.settings import ProviderSettings
from veil_server.upstream import Provider, SseLines, UpstreamStream, _HttpxAnswer, _proxy_for


def split(chunks: list[bytes]) -> list[str]:
    lines = SseLines()
    out = [line for chunk in chunks for line in lines.feed(chunk)]
    return out + lines.close()


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_every_sse_line_end_ends_a_line_whatever_the_chunking(end: str) -> None:
    text = f'data: {{"a":1}}{end}{end}data: [DONE]{end}{end}'.encode()
    expected = ['data: {"a":1}', "", "data: [DONE]", ""]
    assert split([text]) == expected
    for cut in range(1, len(text)):  # a CR and its LF in two chunks are still one line end
        assert split([text[:cut], text[cut:]]) == expected


def test_a_unicode_line_separator_inside_json_is_not_a_line_end() -> None:
    text = 'data: {"content":"a\u2028b\u0085c"}\n\n'.encode()
    assert split([text]) == ['data: {"content":"a\u2028b\u0085c"}', ""]


def test_a_character_cut_between_chunks_is_decoded_whole() -> None:
    text = 'data: "Montréal"\n'.encode()
    cut = text.index("é".encode()) + 1
    assert split([text[:cut], text[cut:]]) == ['data: "Montréal"']


def test_the_proxy_comes_from_the_environment_once_and_no_proxy_exempts_a_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert _proxy_for("https://api.openai.com/v1") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "models.internal")
    assert _proxy_for("https://api.openai.com/v1") == "http://proxy.internal:3128"
    assert _proxy_for("http://api.openai.com/v1") is None  # no HTTP_PROXY
    assert _proxy_for("https://models.internal/v1") is None


class _Pieces(httpx.AsyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece


@pytest.mark.anyio
async def test_an_event_knows_whether_the_next_one_arrived_in_the_same_read() -> None:
    pieces = [
        b'data: {"n":1}\n\ndata: {"n":2}\n\ndata: {"n',
        b'":3}\n\n',
        b': keep-alive\n\ndata: {"n":4}\n\ndata: [DONE]\n\n',
    ]
    response = httpx.Response(200, stream=_Pieces(pieces), headers={"content-type": "text/event-stream"})
    upstream = UpstreamStream(Provider("wire", ProviderSettings(kind="echo")), _HttpxAnswer(response))
    seen = [(event["n"], upstream.more) async for event in upstream.events()]
    # 2 came with 1; 3 was cut by the read, so 2 must not wait for it; [DONE] came with 4 (the end follows at once).
    assert seen == [(1, True), (2, False), (3, False), (4, True)]
    assert upstream.done
