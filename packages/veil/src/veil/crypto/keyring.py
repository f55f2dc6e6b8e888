"""The KeyRing: data keys per tenant, wrapped by the provider's KEK, used for the vault.

Each tenant has two kinds of data key:
- `data`: AES-256-GCM key sealing vault values. Rotating it (`rotate_data_key`) makes a new
  key for new writes; older ones keep decrypting what they sealed.
- `index`: HMAC-SHA256 key of the blind index, which finds a value's existing token without
  storing the value. One per tenant for the tenant's life: changing it would orphan every
  existing token.

Data keys are stored wrapped (by a DataKeyStore the vault backend provides) with the KEK
version that wrapped them. `rewrap()` re-wraps every data key under the current KEK version —
what `veil keys rotate` does after `KeyProvider.rotate()` — without touching vault rows.
Unwrapped data keys are cached in memory, per process.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from veil.crypto.envelope import KEY_BYTES, Sealed, associated_data, open_sealed, seal
from veil.crypto.keys import KeyProvider, KeyRef
from veil.errors import KeyUnavailable, VaultError

Purpose = Literal["data", "index"]


@dataclass(frozen=True, slots=True)
class DataKey:
    """A data key as stored: wrapped, with the KEK version that wrapped it."""

    key_id: str
    tenant: str
    purpose: Purpose
    wrapped: bytes
    kek: KeyRef
    created: float
    active: bool = True
    """The key new writes use (one active key per tenant and purpose)."""


class DataKeyStore(Protocol):
    """Where wrapped data keys are kept; every vault backend provides one."""

    def data_keys(self, tenant: str | None = None) -> list[DataKey]:
        """Every data key (of one tenant, or of all)."""
        ...

    def add_data_key(self, key: DataKey) -> DataKey:
        """Store `key` as the active key of its tenant and purpose, unless another process
        stored one first: then return that one (exactly one active key wins)."""
        ...

    def replace_data_key(self, key: DataKey) -> None:
        """Update a stored key's wrapping or active flag (matched by key_id)."""
        ...


class MemoryDataKeyStore:
    """A DataKeyStore in process memory, for the in-memory vault and tests."""

    def __init__(self) -> None:
        self._keys: dict[str, DataKey] = {}
        self._lock = threading.Lock()

    def data_keys(self, tenant: str | None = None) -> list[DataKey]:
        with self._lock:
            return [k for k in self._keys.values() if tenant is None or k.tenant == tenant]

    def add_data_key(self, key: DataKey) -> DataKey:
        with self._lock:
            for existing in self._keys.values():
                if existing.tenant == key.tenant and existing.purpose == key.purpose and existing.active:
                    return existing
            self._keys[key.key_id] = key
            return key

    def replace_data_key(self, key: DataKey) -> None:
        with self._lock:
            if key.active and any(
                other.key_id != key.key_id and other.tenant == key.tenant and other.purpose == key.purpose
                and other.active
                for other in self._keys.values()
            ):  # fmt: skip
                raise VaultError(
                    f"data key {key.key_id} cannot be made active: the tenant already has an active {key.purpose} key"
                )
            self._keys[key.key_id] = key


def _wrap_aad(key_id: str, tenant: str, purpose: str) -> bytes:
    return associated_data("veil-data-key", key_id, tenant, purpose)


class KeyRing:
    """Encrypts vault values and computes blind indexes for each tenant."""

    def __init__(self, provider: KeyProvider, store: DataKeyStore) -> None:
        self.provider = provider
        self.store = store
        self._plain: dict[str, tuple[str, bytes]] = {}  # key id → (tenant, unwrapped key)
        self._active: dict[tuple[str, Purpose], DataKey] = {}
        self._lock = threading.Lock()

    # -- data keys ------------------------------------------------------------------------

    def _unwrap(self, key: DataKey) -> bytes:
        cached = self._plain.get(key.key_id)
        if cached is not None:
            return cached[1]
        plain = self.provider.unwrap(key.kek, key.wrapped, _wrap_aad(key.key_id, key.tenant, key.purpose))
        self._plain[key.key_id] = (key.tenant, plain)
        return plain

    def _active_key(self, tenant: str, purpose: Purpose) -> DataKey:
        cached = self._active.get((tenant, purpose))
        if cached is not None:
            return cached
        with self._lock:
            for key in self.store.data_keys(tenant):
                if key.purpose == purpose and key.active:
                    self._active[(tenant, purpose)] = key
                    return key
            key = self._new_key(tenant, purpose)
            winner = self.store.add_data_key(key)
            self._active[(tenant, purpose)] = winner
            return winner

    def _new_key(self, tenant: str, purpose: Purpose) -> DataKey:
        key_id = f"dk_{os.urandom(12).hex()}"
        plain = os.urandom(KEY_BYTES)
        kek = self.provider.current()
        wrapped = self.provider.wrap(kek, plain, _wrap_aad(key_id, tenant, purpose))
        self._plain[key_id] = (tenant, plain)
        return DataKey(key_id, tenant, purpose, wrapped, kek, time.time())

    def _key_by_id(self, tenant: str, key_id: str) -> DataKey:
        for key in self.store.data_keys(tenant):
            if key.key_id == key_id:
                return key
        raise KeyUnavailable(f"data key {key_id} of this tenant is not in the key store")

    # -- use --------------------------------------------------------------------------------

    def prepare(self, tenant: str) -> None:
        """Make sure the tenant's data and index keys exist (and are unwrapped in this process)."""
        self._unwrap(self._active_key(tenant, "data"))
        self._unwrap(self._active_key(tenant, "index"))

    def encrypt(self, tenant: str, plaintext: bytes, aad: bytes) -> Sealed:
        key = self._active_key(tenant, "data")
        return Sealed(key.key_id, seal(self._unwrap(key), plaintext, aad))

    def decrypt(self, tenant: str, sealed: Sealed, aad: bytes, *, what: str = "vault record") -> bytes:
        cached = self._plain.get(sealed.key_id)
        if cached is not None:
            owner, plain = cached
            if owner != tenant:
                raise KeyUnavailable(f"data key {sealed.key_id} is not a key of this tenant")
        else:
            plain = self._unwrap(self._key_by_id(tenant, sealed.key_id))
        return open_sealed(plain, sealed.ciphertext, aad, what=what)

    def blind_index(self, tenant: str, kind: str, normalized: str) -> str:
        """HMAC-SHA256 of the normalised value under the tenant's index key, as hex.

        `kind` separates value spaces (the same digits as a SIN and as a phone are two values).
        """
        key = self._unwrap(self._active_key(tenant, "index"))
        message = associated_data(kind, normalized)
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    # -- rotation ---------------------------------------------------------------------------

    def rewrap(self) -> int:
        """Re-wrap every data key not yet under the provider's current KEK version."""
        current = self.provider.current()
        count = 0
        for key in self.store.data_keys():
            if key.kek == current:
                continue
            plain = self.provider.unwrap(key.kek, key.wrapped, _wrap_aad(key.key_id, key.tenant, key.purpose))
            wrapped = self.provider.wrap(current, plain, _wrap_aad(key.key_id, key.tenant, key.purpose))
            self.store.replace_data_key(replace(key, wrapped=wrapped, kek=current))
            count += 1
        with self._lock:
            self._active.clear()
        return count

    def rotate(self) -> tuple[KeyRef, int]:
        """Rotate the KEK (a new version becomes current) and re-wrap every data key under it."""
        ref = self.provider.rotate()
        return ref, self.rewrap()

    def rotate_data_key(self, tenant: str) -> DataKey:
        """Give a tenant a new data key for new writes; older keys still decrypt their rows."""
        with self._lock:
            for key in self.store.data_keys(tenant):
                if key.purpose == "data" and key.active:
                    self.store.replace_data_key(replace(key, active=False))
            self._active.pop((tenant, "data"), None)
        return self._active_key(tenant, "data")

    def kek_versions_in_use(self, tenants: Iterable[str] | None = None) -> dict[KeyRef, int]:
        """How many data keys each KEK version wraps (a version at 0 can be retired)."""
        counts: dict[KeyRef, int] = {}
        wanted = set(tenants) if tenants is not None else None
        for key in self.store.data_keys():
            if wanted is None or key.tenant in wanted:
                counts[key.kek] = counts.get(key.kek, 0) + 1
        return counts
