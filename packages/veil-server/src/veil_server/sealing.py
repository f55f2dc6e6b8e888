"""Secrets the server must read back (webhook signing secrets, approval reasons), sealed at rest.

A webhook secret cannot be hashed like an API key: the server needs it to sign every delivery.
It is sealed with the vault's key ring instead: AES-256-GCM under the tenant's data key (itself
wrapped by the KEK of the key provider: key file, environment or HSM), with associated data that
binds the purpose, the tenant and the row id. A sealed value copied to another row, tenant or
purpose fails to open; an operator with the state database alone reads nothing.

Stored form: `<data key id>:<base64 of nonce || ciphertext || tag>` (one TEXT column, portable
between SQLite and PostgreSQL).
"""

from __future__ import annotations

import base64
import binascii

from veil.crypto.envelope import Sealed, associated_data
from veil.crypto.keyring import KeyRing
from veil.errors import IntegrityError


class FieldSealer:
    """Seal and open short text values of the state database under a tenant's data key."""

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring

    @staticmethod
    def _aad(purpose: str, tenant: str, row_id: str) -> bytes:
        return associated_data("veil-server-field", purpose, tenant, row_id)

    def seal(self, purpose: str, tenant: str, row_id: str, value: str) -> str:
        sealed = self.keyring.encrypt(tenant, value.encode("utf-8"), self._aad(purpose, tenant, row_id))
        return f"{sealed.key_id}:{base64.b64encode(sealed.ciphertext).decode('ascii')}"

    def open(self, purpose: str, tenant: str, row_id: str, stored: str) -> str:
        key_id, sep, encoded = stored.partition(":")
        try:
            if not sep:
                raise ValueError("no key id")
            ciphertext = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise IntegrityError(f"sealed {purpose} of {row_id} is not in the stored format") from None
        plain = self.keyring.decrypt(
            tenant, Sealed(key_id, ciphertext), self._aad(purpose, tenant, row_id), what=f"{purpose} of {row_id}"
        )
        return plain.decode("utf-8")
