"""AES-256-GCM sealing with unambiguous associated data.

A sealed value is `nonce (12 bytes) || ciphertext || tag (16 bytes)`. The associated data is
built from named parts, each length-prefixed, so that ("ab", "c") and ("a", "bc") never give
the same bytes: a row moved to another tenant, scope or token fails to open.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from veil.errors import IntegrityError

NONCE_BYTES = 12
KEY_BYTES = 32
_VERSION = b"veil1"


def associated_data(*parts: str | bytes) -> bytes:
    """Length-prefixed concatenation of the parts, under a format tag.

    >>> associated_data("ab", "c") != associated_data("a", "bc")
    True
    """
    out = bytearray(_VERSION)
    for part in parts:
        raw = part.encode("utf-8") if isinstance(part, str) else part
        out += struct.pack(">I", len(raw))
        out += raw
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Sealed:
    """Ciphertext and the id of the data key that sealed it."""

    key_id: str
    ciphertext: bytes


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate `plaintext` under a 256-bit key, binding `aad`."""
    if len(key) != KEY_BYTES:
        raise ValueError("AES-256-GCM needs a 32-byte key")
    nonce = os.urandom(NONCE_BYTES)  # 96-bit random nonces: safe far beyond 2**32 seals per key
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes, *, what: str = "record") -> bytes:
    """Decrypt and authenticate; any tampering, or the wrong key or aad, raises IntegrityError."""
    if len(sealed) < NONCE_BYTES + 16:
        raise IntegrityError(f"{what} is truncated ({len(sealed)} bytes)")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag:
        raise IntegrityError(
            f"{what} failed authentication: it was altered, moved to another tenant/scope/token, "
            "or sealed under another key"
        ) from None
