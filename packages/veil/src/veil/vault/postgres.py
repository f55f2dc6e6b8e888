"""PostgreSQL vault: for several processes or machines sharing one vault (extra `veil[postgres]`).

The schema lives in its own PostgreSQL schema (default `veil`) and repeats the guarantees of the
embedded vault in the database itself: primary key (tenant, scope, token), unique (tenant,
scope, blind index), a partial unique index for one active data key per tenant and purpose.
New mappings of one scope are written under a transaction-scoped advisory lock on that scope,
so writers in any number of processes allocate token numbers one after the other and never give
a value two tokens; different scopes do not wait for each other. Connections come from a pool;
a connection failure is `VaultUnavailable`, a row that cannot be decoded `IntegrityError`, and
messages carry no values.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from veil.crypto.envelope import Sealed
from veil.crypto.keyring import DataKey
from veil.crypto.keys import KeyRef
from veil.errors import ConfigError, IntegrityError, VaultUnavailable
from veil.vault.base import NewMapping, TokenFactory, VaultRecord

_COLUMNS = "tenant, scope, token, entity, blind_index, key_id, ciphertext, subject, created, expires"
_KEY_COLUMNS = "key_id, tenant, purpose, wrapped, kek_id, kek_version, created, active"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _psycopg() -> tuple[Any, Any]:
    try:
        import psycopg  # noqa: PLC0415
        import psycopg_pool  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError("the PostgreSQL vault needs psycopg: pip install 'veil[postgres]'") from exc
    return psycopg, psycopg_pool


def _schema_sql(schema: str) -> str:
    return f"""
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.mappings (
    tenant TEXT NOT NULL,
    scope TEXT NOT NULL,
    token TEXT NOT NULL,
    entity TEXT NOT NULL,
    blind_index TEXT NOT NULL,
    key_id TEXT NOT NULL,
    ciphertext BYTEA NOT NULL,
    subject TEXT,
    created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION,
    PRIMARY KEY (tenant, scope, token),
    UNIQUE (tenant, scope, blind_index)
);
CREATE INDEX IF NOT EXISTS mappings_subject ON {schema}.mappings (tenant, subject) WHERE subject IS NOT NULL;
CREATE INDEX IF NOT EXISTS mappings_expires ON {schema}.mappings (expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS {schema}.counters (
    tenant TEXT NOT NULL,
    scope TEXT NOT NULL,
    entity TEXT NOT NULL,
    last BIGINT NOT NULL,
    PRIMARY KEY (tenant, scope, entity)
);
CREATE TABLE IF NOT EXISTS {schema}.data_keys (
    key_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    purpose TEXT NOT NULL,
    wrapped BYTEA NOT NULL,
    kek_id TEXT NOT NULL,
    kek_version INTEGER NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    active BOOLEAN NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS data_keys_one_active ON {schema}.data_keys (tenant, purpose) WHERE active;
"""


def _record(row: Any) -> VaultRecord:
    tenant, scope, token, entity, blind_index, key_id, ciphertext, subject, created, expires = row
    if not isinstance(ciphertext, bytes | bytearray | memoryview):
        raise IntegrityError("a vault row is corrupt (ciphertext of the wrong type)")
    return VaultRecord(
        tenant=str(tenant),
        scope=str(scope),
        token=str(token),
        entity=str(entity),
        blind_index=str(blind_index),
        sealed=Sealed(str(key_id), bytes(ciphertext)),
        subject=None if subject is None else str(subject),
        created=float(created),
        expires=None if expires is None else float(expires),
    )


def _data_key(row: Any) -> DataKey:
    key_id, tenant, purpose, wrapped, kek_id, kek_version, created, active = row
    if purpose not in ("data", "index"):
        raise IntegrityError(f"data key {key_id} is corrupt in the vault")
    return DataKey(str(key_id), str(tenant), purpose, bytes(wrapped), KeyRef(str(kek_id), int(kek_version)),
                   float(created), bool(active))  # fmt: skip


class PostgresVault:
    """A Vault (and DataKeyStore) in PostgreSQL."""

    name = "postgres"

    def __init__(self, dsn: str, *, schema: str = "veil", pool_size: int = 10, timeout: float = 10.0) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigError(f"PostgreSQL schema name must match {_SCHEMA_NAME.pattern}, got {schema!r}")
        self._psycopg, pool_module = _psycopg()
        self.schema = schema
        try:
            self._pool = pool_module.ConnectionPool(
                dsn, min_size=1, max_size=pool_size, timeout=timeout, open=True, kwargs={"autocommit": True}
            )
            self._pool.wait(timeout=timeout)
        except Exception as exc:
            raise VaultUnavailable(f"cannot connect to the PostgreSQL vault ({type(exc).__name__})") from None
        with self._transaction() as connection:
            # Concurrent first starts: the advisory lock makes schema creation one at a time.
            connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"veil-schema-{schema}",))
            connection.execute(_schema_sql(schema))

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A pooled connection in autocommit mode: one statement, one round trip."""
        try:
            with self._pool.connection() as connection:
                yield connection
        except self._psycopg.OperationalError as exc:
            raise VaultUnavailable(f"the PostgreSQL vault is unreachable ({type(exc).__name__})") from None
        except self._psycopg.errors.UndefinedTable:
            raise VaultUnavailable(f"the PostgreSQL vault schema {self.schema} is missing") from None

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A pooled connection inside a transaction, committed on success, rolled back on error."""
        with self._connection() as connection, connection.transaction():
            yield connection

    def _query(self, sql: str, params: Sequence[object]) -> list[Any]:
        with self._connection() as connection:
            return list(connection.execute(sql, params).fetchall())

    # -- Vault ----------------------------------------------------------------------------------

    @property
    def keys(self) -> PostgresVault:
        return self

    def get_or_create(self, tenant: str, scope: str, mapping: NewMapping, make_token: TokenFactory) -> tuple[str, bool]:
        return self.get_or_create_many(tenant, scope, [mapping], make_token)[0]

    def get_or_create_many(
        self, tenant: str, scope: str, mappings: Sequence[NewMapping], make_token: TokenFactory
    ) -> list[tuple[str, bool]]:
        now = time.time()
        indexes = list(dict.fromkeys(m.blind_index for m in mappings))
        found: dict[str, tuple[str, bool]] = {}
        for blind_index, token, expires in self._query(
            f"SELECT blind_index, token, expires FROM {self.schema}.mappings "
            "WHERE tenant = %s AND scope = %s AND blind_index = ANY(%s)",
            (tenant, scope, indexes),
        ):
            if expires is None or float(expires) > now:
                found[str(blind_index)] = (str(token), False)
        missing = [m for m in {m.blind_index: m for m in mappings}.values() if m.blind_index not in found]
        if missing:
            with self._transaction() as connection:
                connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{tenant}\x1f{scope}",))
                for mapping in missing:
                    found[mapping.blind_index] = self._create(connection, tenant, scope, mapping, make_token, now)
        return [found[m.blind_index] for m in mappings]

    def _create(  # noqa: PLR0917 - one transaction's worth of context
        self, connection: Any, tenant: str, scope: str, mapping: NewMapping, make_token: TokenFactory, now: float
    ) -> tuple[str, bool]:
        schema = self.schema
        row = connection.execute(
            f"SELECT token, expires FROM {schema}.mappings WHERE tenant = %s AND scope = %s AND blind_index = %s",
            (tenant, scope, mapping.blind_index),
        ).fetchone()
        if row is not None:
            if row[1] is None or row[1] > now:
                return str(row[0]), False
            connection.execute(
                f"DELETE FROM {schema}.mappings WHERE tenant = %s AND scope = %s AND token = %s",
                (tenant, scope, row[0]),
            )
        (number,) = connection.execute(
            f"INSERT INTO {schema}.counters (tenant, scope, entity, last) VALUES (%s, %s, %s, 1) "
            f"ON CONFLICT (tenant, scope, entity) DO UPDATE SET last = {schema}.counters.last + 1 RETURNING last",
            (tenant, scope, mapping.entity),
        ).fetchone()
        token = make_token(mapping.entity, int(number))
        sealed = mapping.seal(token)
        connection.execute(
            f"INSERT INTO {schema}.mappings ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (tenant, scope, token, mapping.entity, mapping.blind_index, sealed.key_id, sealed.ciphertext,
             mapping.subject, now, mapping.expires),
        )  # fmt: skip
        return token, True

    def lookup(self, tenant: str, scope: str, token: str) -> VaultRecord | None:
        rows = self._query(
            f"SELECT {_COLUMNS} FROM {self.schema}.mappings WHERE tenant = %s AND scope = %s AND token = %s",
            (tenant, scope, token),
        )
        if not rows:
            return None
        record = _record(rows[0])
        return None if record.expired() else record

    def find(self, tenant: str, scope: str, blind_index: str) -> str | None:
        rows = self._query(
            f"SELECT token FROM {self.schema}.mappings WHERE tenant = %s AND scope = %s AND blind_index = %s "
            "AND (expires IS NULL OR expires > %s)",
            (tenant, scope, blind_index, time.time()),
        )
        return str(rows[0][0]) if rows else None

    def records(self, tenant: str, scope: str) -> list[VaultRecord]:
        rows = self._query(
            f"SELECT {_COLUMNS} FROM {self.schema}.mappings WHERE tenant = %s AND scope = %s "
            "AND (expires IS NULL OR expires > %s) ORDER BY created, token",
            (tenant, scope, time.time()),
        )
        return [_record(row) for row in rows]

    def _delete(self, where: str, params: Sequence[object]) -> int:
        with self._transaction() as connection:
            return int(connection.execute(f"DELETE FROM {self.schema}.mappings WHERE {where}", params).rowcount)

    def erase_scope(self, tenant: str, scope: str) -> int:
        return self._delete("tenant = %s AND scope = %s", (tenant, scope))

    def erase_subject(self, tenant: str, subject: str) -> int:
        return self._delete("tenant = %s AND subject = %s", (tenant, subject))

    def purge_expired(self, now: float | None = None) -> int:
        return self._delete("expires IS NOT NULL AND expires <= %s", (time.time() if now is None else now,))

    def ping(self) -> None:
        self._query("SELECT 1", ())

    def close(self) -> None:
        self._pool.close()

    # -- DataKeyStore ---------------------------------------------------------------------------

    def data_keys(self, tenant: str | None = None) -> list[DataKey]:
        sql = f"SELECT {_KEY_COLUMNS} FROM {self.schema}.data_keys"
        rows = self._query(sql + " WHERE tenant = %s", (tenant,)) if tenant is not None else self._query(sql, ())
        return [_data_key(row) for row in rows]

    def add_data_key(self, key: DataKey) -> DataKey:
        with self._transaction() as connection:
            inserted = connection.execute(
                f"INSERT INTO {self.schema}.data_keys ({_KEY_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING RETURNING key_id",
                (key.key_id, key.tenant, key.purpose, key.wrapped, key.kek.key_id, key.kek.version, key.created,
                 key.active),
            ).fetchone()  # fmt: skip
            if inserted is not None:
                return key
            row = connection.execute(
                f"SELECT {_KEY_COLUMNS} FROM {self.schema}.data_keys WHERE tenant = %s AND purpose = %s AND active",
                (key.tenant, key.purpose),
            ).fetchone()
        if row is None:  # pragma: no cover - the conflict was on this very key id
            raise IntegrityError(f"data key {key.key_id} conflicts with a stored key")
        return _data_key(row)

    def replace_data_key(self, key: DataKey) -> None:
        with self._transaction() as connection:
            connection.execute(
                f"UPDATE {self.schema}.data_keys SET wrapped = %s, kek_id = %s, kek_version = %s, active = %s "
                "WHERE key_id = %s",
                (key.wrapped, key.kek.key_id, key.kek.version, key.active, key.key_id),
            )
