"""The Vault protocol: token ↔ sealed value mappings, per tenant and scope.

A scope is (tenant, scope name): a conversation, or a collection of documents and queries.
Within a scope one value always has the same token and a token only ever one value. The vault
finds a value's existing token by its **blind index** (a keyed HMAC of the normalised value,
computed by the KeyRing), so it stores no plaintext and uses none as a key; values are stored
sealed (AES-256-GCM, associated data = tenant + scope + token).

Every backend enforces, in its own storage and not by convention:
- tenant isolation: every query is keyed by tenant;
- uniqueness: (tenant, scope, blind index) and (tenant, scope, token) are unique, and token
  numbers are allocated atomically, so concurrent writers (threads or processes) never give one
  value two tokens nor one token two values;
- durability: a token is returned only after its mapping is committed;
- expiry: a mapping past its `expires` time is as good as gone (and purged by `purge_expired`);
- erasure: of a scope, or of one subject's values (Loi 25 / GDPR), counters kept so that an
  erased token's number is never given to another value.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from veil.crypto.envelope import Sealed
from veil.crypto.keyring import DataKeyStore


@dataclass(frozen=True, slots=True)
class VaultRecord:
    """One mapping as stored. `subject` is a blind index of the data subject's id, if given."""

    tenant: str
    scope: str
    token: str
    entity: str
    blind_index: str
    sealed: Sealed
    subject: str | None
    created: float
    expires: float | None

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and self.expires <= (time.time() if now is None else now)


TokenFactory = Callable[[str, int], str]
"""(entity, number) → token text, e.g. ("EMAIL", 3) → "{{EMAIL_3}}"."""

Sealer = Callable[[str], Sealed]
"""token → the value sealed with that token in its associated data."""


@dataclass(frozen=True, slots=True)
class NewMapping:
    """What `get_or_create` needs to store a value that has no token yet."""

    entity: str
    blind_index: str
    seal: Sealer
    subject: str | None = None
    expires: float | None = None


@runtime_checkable
class Vault(Protocol):
    """Stores mappings; see the module docstring for the guarantees every backend gives."""

    name: str

    @property
    def keys(self) -> DataKeyStore:
        """Where this vault keeps its wrapped data keys."""
        ...

    def get_or_create(self, tenant: str, scope: str, mapping: NewMapping, make_token: TokenFactory) -> tuple[str, bool]:
        """The token of `mapping.blind_index` in the scope, creating it if needed.

        Returns (token, created). A new token's number is the next one for (tenant, scope,
        entity); `mapping.seal(token)` seals the value; the row is committed before returning.

        `seal` may run inside the backend's write transaction or scope lock, and for a token that
        is then not used (a concurrent writer stored the value first, or the write is retried; a
        number may so be skipped, never reused): it must not write to the vault itself — get the
        tenant's data keys ready first (`KeyRing.prepare`).
        """
        ...

    def lookup(self, tenant: str, scope: str, token: str) -> VaultRecord | None:
        """The record of a token, or None (unknown, erased or expired)."""
        ...

    def find(self, tenant: str, scope: str, blind_index: str) -> str | None:
        """The token of a value (by blind index), or None."""
        ...

    def records(self, tenant: str, scope: str) -> list[VaultRecord]:
        """Every live record of a scope, oldest first."""
        ...

    def erase_scope(self, tenant: str, scope: str) -> int:
        """Delete every mapping of a scope; returns how many."""
        ...

    def erase_subject(self, tenant: str, subject: str) -> int:
        """Delete every mapping of one data subject, in every scope of the tenant."""
        ...

    def purge_expired(self, now: float | None = None) -> int:
        """Delete expired mappings; returns how many."""
        ...

    def ping(self) -> None:
        """Raise VaultUnavailable if the backend cannot be reached."""
        ...

    def close(self) -> None: ...


def get_or_create_many(
    vault: Vault, tenant: str, scope: str, mappings: Sequence[NewMapping], make_token: TokenFactory
) -> list[tuple[str, bool]]:
    """`get_or_create` for several values, in one round trip where the backend can batch
    (a `get_or_create_many` method), else one value at a time."""
    batch = getattr(vault, "get_or_create_many", None)
    if batch is not None:
        result: list[tuple[str, bool]] = batch(tenant, scope, mappings, make_token)
        return result
    return [vault.get_or_create(tenant, scope, mapping, make_token) for mapping in mappings]
