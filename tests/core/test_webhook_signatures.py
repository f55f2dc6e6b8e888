"""veil.webhooks: a receiver accepts exactly the deliveries signed with its secret, recently."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from veil import WebhookSignatureError
from veil.webhooks import parse, sign, verify

SECRET = "whsec_7Jf2kq9VbN3xT0pLmZ4sW8rYcH1dE6gA"
BODY = json.dumps({"id": "evt_1", "type": "anonymize.flagged", "data": {"pii_count": 12}}).encode()
NOW = 1_767_225_600


def reason(secret: str, body: bytes, header: str, **options: float) -> str:
    with pytest.raises(WebhookSignatureError) as caught:
        verify(secret, body, header, **options)
    return caught.value.reason


def test_a_signed_body_verifies_and_returns_its_timestamp() -> None:
    header = sign(SECRET, BODY, timestamp=NOW)
    assert verify(SECRET, BODY, header, now=NOW + 10) == NOW


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, timestamp=NOW) == f"t={NOW},v1={expected}"


def test_a_tampered_body_is_refused() -> None:
    header = sign(SECRET, BODY, timestamp=NOW)
    tampered = BODY.replace(b"12", b"13")
    assert reason(SECRET, tampered, header, now=NOW) == "mismatch"
    assert reason(SECRET, BODY + b" ", header, now=NOW) == "mismatch"


def test_a_changed_timestamp_breaks_the_signature() -> None:
    header = sign(SECRET, BODY, timestamp=NOW - 3600)
    moved = header.replace(f"t={NOW - 3600}", f"t={NOW}")
    assert reason(SECRET, BODY, moved, now=NOW) == "mismatch"


def test_another_secret_is_refused() -> None:
    header = sign("whsec_someone_else", BODY, timestamp=NOW)
    assert reason(SECRET, BODY, header, now=NOW) == "mismatch"


def test_an_old_delivery_is_refused_as_a_replay() -> None:
    header = sign(SECRET, BODY, timestamp=NOW - 301)
    assert reason(SECRET, BODY, header, now=NOW) == "expired"
    assert verify(SECRET, BODY, sign(SECRET, BODY, timestamp=NOW - 299), now=NOW) == NOW - 299


def test_a_delivery_from_beyond_the_tolerance_in_the_future_is_refused() -> None:
    header = sign(SECRET, BODY, timestamp=NOW + 301)
    assert reason(SECRET, BODY, header, now=NOW) == "future"
    assert verify(SECRET, BODY, sign(SECRET, BODY, timestamp=NOW + 299), now=NOW) == NOW + 299


def test_the_tolerance_is_the_receivers_choice() -> None:
    header = sign(SECRET, BODY, timestamp=NOW - 60)
    assert reason(SECRET, BODY, header, now=NOW, tolerance=30) == "expired"
    assert verify(SECRET, BODY, header, now=NOW, tolerance=3600) == NOW - 60


def test_during_a_rotation_either_secret_verifies() -> None:
    header = sign(["whsec_new", "whsec_old"], BODY, timestamp=NOW)
    assert header.count("v1=") == 2
    assert verify("whsec_new", BODY, header, now=NOW) == NOW
    assert verify("whsec_old", BODY, header, now=NOW) == NOW
    assert reason("whsec_retired", BODY, header, now=NOW) == "mismatch"


def test_unknown_schemes_are_skipped_but_a_header_without_v1_is_refused() -> None:
    header = sign(SECRET, BODY, timestamp=NOW) + ",v2=whatever"
    assert verify(SECRET, BODY, header, now=NOW) == NOW
    assert reason(SECRET, BODY, f"t={NOW},v2=abc", now=NOW) == "malformed"


@pytest.mark.parametrize(
    "header",
    [
        "",
        "   ",
        "v1=" + "0" * 64,
        f"t={NOW}",
        f"t=abc,v1={'0' * 64}",
        f"t=-5,v1={'0' * 64}",
        f"t={NOW},t={NOW},v1={'0' * 64}",
        f"t={NOW},v1=xyz",
        f"t={NOW},v1={'A' * 64}",
        f"t={NOW};v1={'0' * 64}",
        f"t={NOW},v1={'0' * 64}," + "x" * 5000,
    ],
)
def test_malformed_headers_are_refused_clearly(header: str) -> None:
    assert reason(SECRET, BODY, header, now=NOW) == "malformed"


def test_the_body_must_be_the_raw_bytes() -> None:
    with pytest.raises(TypeError, match="raw body"):
        verify(SECRET, BODY.decode(), sign(SECRET, BODY), now=NOW)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="raw body"):
        sign(SECRET, {"id": "evt_1"})  # type: ignore[arg-type]


def test_an_empty_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        sign("", BODY)


def test_parse_reads_the_timestamp_and_every_v1() -> None:
    header = sign(["a", "b"], BODY, timestamp=NOW)
    timestamp, signatures = parse(header)
    assert timestamp == NOW and len(signatures) == 2 and signatures[0] != signatures[1]


@given(body=st.binary(max_size=512), flip=st.integers(min_value=0))
def test_any_single_byte_change_is_refused(body: bytes, flip: int) -> None:
    header = sign(SECRET, body, timestamp=NOW)
    assert verify(SECRET, body, header, now=NOW) == NOW
    if body:
        position = flip % len(body)
        changed = body[:position] + bytes([body[position] ^ 0x01]) + body[position + 1 :]
        assert reason(SECRET, changed, header, now=NOW) == "mismatch"
