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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from veil.errors import ConfigError, VaultUnavailable
from veil.vault.sql import SQLVault

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


class PostgresVault(SQLVault):
    """A Vault (and DataKeyStore) in PostgreSQL."""

    name = "postgres"

    def __init__(self, dsn: str, *, schema: str = "veil", pool_size: int = 10, timeout: float = 10.0) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigError(f"PostgreSQL schema name must match {_SCHEMA_NAME.pattern}, got {schema!r}")
        self._psycopg, pool_module = _psycopg()
        self.schema = schema
        self.mark = "%s"
        self.mappings, self.counters, self.data_keys_table = (f"{schema}.mappings", f"{schema}.counters",
                                                               f"{schema}.data_keys")  # fmt: skip
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

    @contextmanager
    def _write(self, tenant: str | None = None, scope: str | None = None) -> Iterator[Any]:
        with self._transaction() as connection:
            if tenant is not None and scope is not None:
                # Writers of one scope go one at a time (token numbers); other scopes do not wait.
                connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{tenant}\x1f{scope}",))
            yield connection

    def close(self) -> None:
        self._pool.close()
