"""What the SQL vaults share: the queries, written once over a small dialect.

`SQLVault` implements the Vault and DataKeyStore protocols on any DB-API connection whose
`execute(sql, params)` returns a cursor (sqlite3, psycopg). A backend gives its placeholder,
its table names, how to read (`_query`) and how to write (`_write`: a transaction in which the
scope's token numbers are allocated one writer at a time).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from veil.crypto.envelope import Sealed
from veil.crypto.keyring import DataKey
from veil.crypto.keys import KeyRef
from veil.errors import IntegrityError, VaultError
from veil.vault.base import NewMapping, TokenFactory, VaultRecord

COLUMNS = "tenant, scope, token, entity, blind_index, key_id, ciphertext, subject, created, expires"
KEY_COLUMNS = "key_id, tenant, purpose, wrapped, kek_id, kek_version, created, active"
_BATCH = 500


def decode_record(row: Any) -> VaultRecord:
    tenant, scope, token, entity, blind_index, key_id, ciphertext, subject, created, expires = row
    if not isinstance(ciphertext, bytes | bytearray | memoryview) or not isinstance(key_id, str):
        raise IntegrityError("a vault row is corrupt (ciphertext or key id of the wrong type)")
    return VaultRecord(
        tenant=str(tenant),
        scope=str(scope),
        token=str(token),
        entity=str(entity),
        blind_index=str(blind_index),
        sealed=Sealed(key_id, bytes(ciphertext)),
        subject=None if subject is None else str(subject),
        created=float(created),
        expires=None if expires is None else float(expires),
    )


def decode_data_key(row: Any) -> DataKey:
    key_id, tenant, purpose, wrapped, kek_id, kek_version, created, active = row
    if purpose not in ("data", "index") or not isinstance(wrapped, bytes | bytearray | memoryview):
        raise IntegrityError(f"data key {key_id} is corrupt in the vault")
    return DataKey(
        key_id=str(key_id),
        tenant=str(tenant),
        purpose=purpose,
        wrapped=bytes(wrapped),
        kek=KeyRef(str(kek_id), int(kek_version)),
        created=float(created),
        active=bool(active),
    )


class SQLVault:
    """The Vault protocol in SQL; see the module docstring for what a backend provides."""

    mark = "?"
    mappings = "veil_mappings"
    counters = "veil_counters"
    data_keys_table = "veil_data_keys"
    record_order = "created, token"

    def _query(self, sql: str, params: Sequence[object]) -> list[Any]:
        raise NotImplementedError

    def _write(self, tenant: str | None = None, scope: str | None = None) -> AbstractContextManager[Any]:
        """A write transaction; with a tenant and scope, writers of that scope go one at a time."""
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        return text.replace("?", self.mark) if self.mark != "?" else text

    def _whole_scope(self, tenant: str, scope: str) -> tuple[str, tuple[object, ...]]:
        """The condition selecting every row of a scope, and its parameters (a backend may add a
        term that steers the query to its scope index)."""
        return "tenant = ? AND scope = ?", (tenant, scope)

    # -- Vault ----------------------------------------------------------------------------------

    @property
    def keys(self) -> SQLVault:
        return self

    def get_or_create(self, tenant: str, scope: str, mapping: NewMapping, make_token: TokenFactory) -> tuple[str, bool]:
        return self.get_or_create_many(tenant, scope, [mapping], make_token)[0]

    def get_or_create_many(
        self, tenant: str, scope: str, mappings: Sequence[NewMapping], make_token: TokenFactory
    ) -> list[tuple[str, bool]]:
        """`get_or_create` for several values in one read and at most one write transaction."""
        now = time.time()
        indexes = list(dict.fromkeys(m.blind_index for m in mappings))
        found: dict[str, tuple[str, bool]] = {}
        for start in range(0, len(indexes), _BATCH):
            chunk = indexes[start : start + _BATCH]
            sql = (
                f"SELECT blind_index, token, expires FROM {self.mappings} WHERE tenant = ? AND scope = ? "
                f"AND blind_index IN ({', '.join('?' * len(chunk))})"
            )
            for blind_index, token, expires in self._query(self._sql(sql), (tenant, scope, *chunk)):
                if expires is None or float(expires) > now:
                    found[str(blind_index)] = (str(token), False)
        missing = [m for m in {m.blind_index: m for m in mappings}.values() if m.blind_index not in found]
        if missing:
            with self._write(tenant, scope) as connection:
                for mapping in missing:
                    found[mapping.blind_index] = self._create(connection, tenant, scope, mapping, make_token, now)
        return [found[m.blind_index] for m in mappings]

    def _create(  # noqa: PLR0917 - one transaction's worth of context
        self, connection: Any, tenant: str, scope: str, mapping: NewMapping, make_token: TokenFactory, now: float
    ) -> tuple[str, bool]:
        # Inside the write transaction: another writer may have created it since our read.
        row = connection.execute(
            self._sql(f"SELECT token, expires FROM {self.mappings} WHERE tenant = ? AND scope = ? AND blind_index = ?"),
            (tenant, scope, mapping.blind_index),
        ).fetchone()
        if row is not None:
            if row[1] is None or row[1] > now:
                return str(row[0]), False
            connection.execute(
                self._sql(f"DELETE FROM {self.mappings} WHERE tenant = ? AND scope = ? AND token = ?"),
                (tenant, scope, row[0]),
            )
        (number,) = connection.execute(
            self._sql(
                f"INSERT INTO {self.counters} (tenant, scope, entity, last) VALUES (?, ?, ?, 1) "
                f"ON CONFLICT (tenant, scope, entity) DO UPDATE SET last = {self.counters}.last + 1 RETURNING last"
            ),
            (tenant, scope, mapping.entity),
        ).fetchone()
        token = make_token(mapping.entity, int(number))
        sealed = mapping.seal(token)
        connection.execute(
            self._sql(f"INSERT INTO {self.mappings} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            (tenant, scope, token, mapping.entity, mapping.blind_index, sealed.key_id, sealed.ciphertext,
             mapping.subject, now, mapping.expires),
        )  # fmt: skip
        return token, True

    def lookup(self, tenant: str, scope: str, token: str) -> VaultRecord | None:
        rows = self._query(
            self._sql(f"SELECT {COLUMNS} FROM {self.mappings} WHERE tenant = ? AND scope = ? AND token = ?"),
            (tenant, scope, token),
        )
        if not rows:
            return None
        record = decode_record(rows[0])
        return None if record.expired() else record

    def find(self, tenant: str, scope: str, blind_index: str) -> str | None:
        rows = self._query(
            self._sql(
                f"SELECT token FROM {self.mappings} WHERE tenant = ? AND scope = ? AND blind_index = ? "
                "AND (expires IS NULL OR expires > ?)"
            ),
            (tenant, scope, blind_index, time.time()),
        )
        return str(rows[0][0]) if rows else None

    def records(self, tenant: str, scope: str) -> list[VaultRecord]:
        where, params = self._whole_scope(tenant, scope)
        rows = self._query(
            self._sql(
                f"SELECT {COLUMNS} FROM {self.mappings} WHERE {where} "
                f"AND (expires IS NULL OR expires > ?) ORDER BY {self.record_order}"
            ),
            (*params, time.time()),
        )
        return [decode_record(row) for row in rows]

    def _delete(self, where: str, params: Sequence[object]) -> int:
        with self._write() as connection:
            return int(connection.execute(self._sql(f"DELETE FROM {self.mappings} WHERE {where}"), params).rowcount)

    def erase_scope(self, tenant: str, scope: str) -> int:
        return self._delete(*self._whole_scope(tenant, scope))

    def erase_subject(self, tenant: str, subject: str) -> int:
        return self._delete("tenant = ? AND subject = ?", (tenant, subject))

    def purge_expired(self, now: float | None = None) -> int:
        return self._delete("expires IS NOT NULL AND expires <= ?", (time.time() if now is None else now,))

    def ping(self) -> None:
        self._query("SELECT 1", ())

    # -- DataKeyStore ---------------------------------------------------------------------------

    def data_keys(self, tenant: str | None = None) -> list[DataKey]:
        sql = f"SELECT {KEY_COLUMNS} FROM {self.data_keys_table}"
        if tenant is None:
            return [decode_data_key(row) for row in self._query(sql, ())]
        return [decode_data_key(row) for row in self._query(self._sql(sql + " WHERE tenant = ?"), (tenant,))]

    def _active_key(self, connection: Any, tenant: str, purpose: str) -> Any:
        return connection.execute(
            self._sql(
                f"SELECT {KEY_COLUMNS} FROM {self.data_keys_table} WHERE tenant = ? AND purpose = ? AND active = ?"
            ),
            (tenant, purpose, True),
        ).fetchone()

    def add_data_key(self, key: DataKey) -> DataKey:
        with self._write() as connection:
            row = self._active_key(connection, key.tenant, key.purpose)
            if row is None:
                # One active key per tenant and purpose is a unique index: a concurrent writer's
                # key wins the conflict, and is what every writer reads back.
                connection.execute(
                    self._sql(
                        f"INSERT INTO {self.data_keys_table} ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT DO NOTHING"
                    ),
                    (key.key_id, key.tenant, key.purpose, key.wrapped, key.kek.key_id, key.kek.version, key.created,
                     key.active),
                )  # fmt: skip
                row = self._active_key(connection, key.tenant, key.purpose)
        return key if row is None else decode_data_key(row)

    def replace_data_key(self, key: DataKey) -> None:
        with self._write() as connection:
            active = self._active_key(connection, key.tenant, key.purpose) if key.active else None
            if active is not None and active[0] != key.key_id:
                # The partial unique index would refuse it too, as a driver error: say it plainly.
                raise VaultError(
                    f"data key {key.key_id} cannot be made active: the tenant already has an active {key.purpose} key"
                )
            connection.execute(
                self._sql(
                    f"UPDATE {self.data_keys_table} SET wrapped = ?, kek_id = ?, kek_version = ?, active = ? "
                    "WHERE key_id = ?"
                ),
                (key.wrapped, key.kek.key_id, key.kek.version, key.active, key.key_id),
            )
