"""veil_server.jsonio: orjson on the model paths, the standard library for what orjson refuses."""

from __future__ import annotations

import json
import math
import random
import string
from typing import Any

import pytest
from veil_server.jsonio import AnswerResponse, dumps, loads


def _stdlib(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    alphabet = string.printable + 'éàçÉ€😀\u2028\u2029\x00\x1f"\\/'
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
    if kind == 1:
        return rng.randrange(-(2**63), 2**63)
    if kind == 2:
        return rng.choice([None, True, False])
    if kind == 3:
        return rng.choice([0.5, -2.25, 3.0, 1234.5625])  # exact in binary: written alike by both
    if kind == 4:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(6))): _random_value(rng, depth + 1)
        for _ in range(rng.randrange(4))
    }


def test_output_is_what_the_standard_library_writes_for_json_values() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        value = _random_value(rng)
        assert dumps(value) == _stdlib(value)
        assert loads(dumps(value)) == value
        assert loads(dumps(value).decode()) == value


def test_a_stream_chunk_round_trips_byte_for_byte() -> None:
    raw = (
        '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764000000,"model":"m",'
        '"choices":[{"index":0,"delta":{"content":"Bonjour {{EMAIL_1}} — à bientôt\\n"},'
        '"logprobs":null,"finish_reason":null}]}'
    )
    assert dumps(loads(raw)).decode() == raw


@pytest.mark.parametrize(
    ("text", "check"),
    [
        ('{"a": NaN}', lambda v: math.isnan(v["a"])),
        ('{"a": Infinity}', lambda v: v["a"] == math.inf),
        ('{"a": "\\ud800"}', lambda v: v["a"] == "\ud800"),  # an escaped lone surrogate
        ('{"a": 123456789012345678901234567890}', lambda v: v["a"] == 123456789012345678901234567890),
    ],
)
def test_what_orjson_refuses_is_read_as_the_standard_library_reads_it(text: str, check: Any) -> None:
    assert check(loads(text))


def test_utf16_json_is_read() -> None:
    assert loads('{"a": "é"}'.encode("utf-16")) == {"a": "é"}


@pytest.mark.parametrize("text", ["", "{", "[1,]", "nope", '{"a": 1} x'])
def test_what_is_not_json_raises_value_error(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):  # a ValueError, as json.loads raises
        loads(text)


def test_values_orjson_cannot_write_are_written_escaped() -> None:
    big = 2**70
    assert dumps({"n": big}) == b'{"n":1180591620717411303424}'
    written = dumps({"s": "a\ud800é"})
    assert written == b'{"s":"a\\ud800\\u00e9"}'  # valid UTF-8, the same string once read
    assert loads(written) == {"s": "a\ud800é"}


def test_nan_is_written_as_null_not_as_invalid_json() -> None:
    assert dumps({"x": math.nan, "y": math.inf}) == b'{"x":null,"y":null}'


def test_answer_response_renders_compact_utf8_json() -> None:
    response = AnswerResponse({"content": "é {{EMAIL_1}}", "n": [1, 2.5]})
    assert response.body == '{"content":"é {{EMAIL_1}}","n":[1,2.5]}'.encode()
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.body))


def test_integers_beyond_64_bits_keep_every_digit() -> None:
    for text in ('{"a": 123456789012345678901234567890}', '{"a": -18446744073709551617}', "[9223372036854775808]"):
        assert loads(text) == json.loads(text)
        assert loads(text.encode()) == json.loads(text)
        assert dumps(loads(text)) == _stdlib(json.loads(text))
