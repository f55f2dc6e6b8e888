"""In-memory vault: for tests and single-process trials. Nothing survives the process."""

from __future__ import annotations

import threading
import time

from veil.crypto.keyring import DataKeyStore, MemoryDataKeyStore
from veil.vault.base import NewMapping, TokenFactory, VaultRecord


class MemoryVault:
    """A Vault in a dict, guarded by one lock (thread-safe; not shared between processes)."""

    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_token: dict[tuple[str, str, str], VaultRecord] = {}
        self._by_index: dict[tuple[str, str, str], str] = {}
        self._counters: dict[tuple[str, str, str], int] = {}
        self._keys = MemoryDataKeyStore()

    @property
    def keys(self) -> DataKeyStore:
        return self._keys

    def _drop(self, record: VaultRecord) -> None:
        self._by_token.pop((record.tenant, record.scope, record.token), None)
        self._by_index.pop((record.tenant, record.scope, record.blind_index), None)

    def get_or_create(self, tenant: str, scope: str, mapping: NewMapping, make_token: TokenFactory) -> tuple[str, bool]:
        with self._lock:
            token = self._by_index.get((tenant, scope, mapping.blind_index))
            if token is not None:
                record = self._by_token[(tenant, scope, token)]
                if not record.expired():
                    return token, False
                self._drop(record)
            counter = (tenant, scope, mapping.entity)
            number = self._counters.get(counter, 0) + 1
            self._counters[counter] = number
            token = make_token(mapping.entity, number)
            record = VaultRecord(
                tenant,
                scope,
                token,
                mapping.entity,
                mapping.blind_index,
                mapping.seal(token),
                mapping.subject,
                time.time(),
                mapping.expires,
            )
            self._by_token[(tenant, scope, token)] = record
            self._by_index[(tenant, scope, mapping.blind_index)] = token
            return token, True

    def lookup(self, tenant: str, scope: str, token: str) -> VaultRecord | None:
        record = self._by_token.get((tenant, scope, token))
        return None if record is None or record.expired() else record

    def find(self, tenant: str, scope: str, blind_index: str) -> str | None:
        token = self._by_index.get((tenant, scope, blind_index))
        return token if token is not None and self.lookup(tenant, scope, token) else None

    def records(self, tenant: str, scope: str) -> list[VaultRecord]:
        with self._lock:
            found = [r for (t, s, _), r in self._by_token.items() if t == tenant and s == scope and not r.expired()]
        return sorted(found, key=lambda r: r.created)

    def erase_scope(self, tenant: str, scope: str) -> int:
        with self._lock:
            doomed = [r for (t, s, _), r in self._by_token.items() if t == tenant and s == scope]
            for record in doomed:
                self._drop(record)
        return len(doomed)

    def erase_subject(self, tenant: str, subject: str) -> int:
        with self._lock:
            doomed = [r for (t, _, _), r in self._by_token.items() if t == tenant and r.subject == subject]
            for record in doomed:
                self._drop(record)
        return len(doomed)

    def purge_expired(self, now: float | None = None) -> int:
        with self._lock:
            doomed = [r for r in self._by_token.values() if r.expired(now)]
            for record in doomed:
                self._drop(record)
        return len(doomed)

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None
