"""SseLines: the line splitter of upstream event streams (both wires use it)."""

from __future__ import annotations

import pytest
from veil_server.upstream import SseLines


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
