"""Signed webhooks: the `X-Veil-Signature` header, for the sender and for receivers.

The gateway POSTs each event as a JSON body with the header

    X-Veil-Signature: t=1767225600,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

where `v1` is the hex HMAC-SHA256, under the subscription's secret (`whsec_…`), of the bytes
`b"<t>." + body`. Signing the timestamp with the body lets a receiver refuse a captured delivery
replayed later: `verify` rejects a timestamp further than `tolerance` seconds from its clock
(either way: old deliveries and clocks running ahead). During a secret rotation the sender adds
one `v1=` per live secret; a receiver accepts the delivery if any of them matches its secret.

A receiver verifies the raw body, before parsing it:

    from veil.webhooks import verify, WebhookSignatureError

    try:
        verify(secret, raw_body, headers["X-Veil-Signature"])
    except WebhookSignatureError:
        return 400

Deliveries are at least once: a retried delivery carries the same `X-Veil-Delivery` id, which
receivers use to drop duplicates. Only the standard library is used (hmac, hashlib).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

from veil.errors import WebhookSignatureError

SIGNATURE_HEADER = "X-Veil-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE = 300
"""Seconds a delivery's timestamp may differ from the receiver's clock (replays, clock skew)."""

_MAX_HEADER_CHARS = 4096

Secret = str | bytes


def _key(secret: Secret) -> bytes:
    key = secret if isinstance(secret, bytes) else secret.encode("utf-8")
    if not key:
        raise ValueError("a webhook secret must not be empty")
    return key


def _mac(secret: Secret, timestamp: int, body: bytes) -> str:
    return hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: Secret | Sequence[Secret], body: bytes, timestamp: int | None = None) -> str:
    """The `X-Veil-Signature` value for `body` at `timestamp` (default: now, in Unix seconds).

    Several secrets (the new one first, then the one being rotated out) give one `v1=` each.

    >>> sign("whsec_test", b'{"id":"evt_1"}', timestamp=1700000000)
    't=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925'
    """
    if not isinstance(body, bytes):
        raise TypeError("sign the raw body bytes, exactly as they are sent")
    secrets = [secret] if isinstance(secret, str | bytes) else list(secret)
    if not secrets:
        raise ValueError("sign needs at least one secret")
    at = int(time.time()) if timestamp is None else int(timestamp)
    return ",".join([f"t={at}", *(f"{SCHEME}={_mac(s, at, body)}" for s in secrets)])


def parse(header: str) -> tuple[int, list[str]]:
    """The timestamp and the `v1` signatures of a header; WebhookSignatureError if malformed.

    Unknown schemes (a future `v2=`) are skipped, so that senders can add one without breaking
    receivers; a header with no `v1` at all is refused.
    """
    if not isinstance(header, str) or not header.strip():
        raise WebhookSignatureError("missing X-Veil-Signature header", reason="malformed")
    if len(header) > _MAX_HEADER_CHARS:
        raise WebhookSignatureError("X-Veil-Signature header is too long", reason="malformed")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            raise WebhookSignatureError("malformed X-Veil-Signature header: expected t=…,v1=…", reason="malformed")
        if name == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                raise WebhookSignatureError("malformed X-Veil-Signature timestamp", reason="malformed")
            timestamp = int(value)
        elif name == SCHEME:
            if len(value) != 64 or not all(c in "0123456789abcdef" for c in value):
                raise WebhookSignatureError("malformed X-Veil-Signature v1 value (64 hex digits)", reason="malformed")
            signatures.append(value)
    if timestamp is None:
        raise WebhookSignatureError("X-Veil-Signature has no timestamp (t=…)", reason="malformed")
    if not signatures:
        raise WebhookSignatureError("X-Veil-Signature has no v1 signature", reason="malformed")
    return timestamp, signatures


def verify(
    secret: Secret,
    body: bytes,
    header: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Check a delivery: returns its timestamp, or raises WebhookSignatureError.

    `body` is the raw request body (bytes as received: parsing and re-serialising JSON changes
    them). The signature is checked first, in constant time against every `v1` of the header,
    then the timestamp against `now` (default: the receiver's clock) within `tolerance` seconds.
    """
    if not isinstance(body, bytes):
        raise TypeError("verify the raw body bytes, exactly as received")
    if tolerance < 0:
        raise ValueError("tolerance must be zero or more seconds")
    timestamp, signatures = parse(header)
    expected = _mac(secret, timestamp, body)
    matched = False
    for candidate in signatures:  # every one, always: no early exit
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise WebhookSignatureError(
            "webhook signature mismatch: the body was altered, or it was signed with another secret",
            reason="mismatch",
        )
    clock = time.time() if now is None else now
    if timestamp < clock - tolerance:
        raise WebhookSignatureError(
            f"webhook timestamp is {int(clock - timestamp)} s old (tolerance {tolerance:g} s): a replay, "
            "or the receiver's clock is off",
            reason="expired",
        )
    if timestamp > clock + tolerance:
        raise WebhookSignatureError(
            f"webhook timestamp is {int(timestamp - clock)} s in the future (tolerance {tolerance:g} s): "
            "a clock is off",
            reason="future",
        )
    return timestamp


__all__ = ["DEFAULT_TOLERANCE", "SIGNATURE_HEADER", "WebhookSignatureError", "parse", "sign", "verify"]
