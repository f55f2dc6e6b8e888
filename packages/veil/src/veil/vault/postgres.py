"""PostgreSQL vault: for several processes or machines sharing one vault (extra `veil[postgres]`).

The schema lives in its own PostgreSQL schema (default `veil`, created idempotently) and repeats
the guarantees of the embedded vault in the database itself: a primary key over tenant, scope and
token, a unique constraint over tenant, scope and blind index, token numbers from a counters table
incremented by one atomic `INSERT … ON CONFLICT DO UPDATE … RETURNING`, and a partial unique index
for one active data key per tenant and purpose. The queries are the SQLite vault's
(`veil.vault.sql`).

Each index leads with what its queries look up, so the planner has one choice whatever its
statistics (a table that was never analysed — autovacuum off, or a young table — would otherwise
pick between two (tenant, scope, …) indexes by a coin toss, and scan a whole scope per lookup):
the token (primary key token, tenant, scope), the blind index (unique blind index, tenant, scope),
and, for reading or erasing a whole scope, the expression `tenant || U+001F || scope` with the
creation sequence, which gives records in creation order.

New mappings of one scope are written under a transaction-scoped advisory lock on that scope, so
writers in any number of processes allocate numbers one after the other, leave no gaps and never
give a value two tokens; other scopes do not wait. Transactions run at READ COMMITTED whatever the
server's default: the re-read after the lock must see the previous holder's commit (under
REPEATABLE READ the snapshot would predate the lock). Should a unique violation still happen (a
writer that did not take the lock) or the server abort the transaction (deadlock), it rolls back
— its number with it — and is retried once, which reads the winner's token.

Connections come from a thread-safe pool; a connection that sat idle is checked before use, and
one found broken has the idle ones re-checked, so a server restart costs the calls in flight and
at most one more.
A connection failure is `VaultUnavailable`, a row that cannot be decoded `IntegrityError`; no
message carries a value or the DSN.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from weakref import WeakKeyDictionary

from veil.errors import ConfigError, IntegrityError, VaultUnavailable
from veil.vault.base import NewMapping, TokenFactory
from veil.vault.sql import SQLVault

SCHEMA_VERSION = 1

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _psycopg() -> tuple[Any, Any]:
    try:
        import psycopg  # noqa: PLC0415
        import psycopg_pool  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError("the PostgreSQL vault needs psycopg: pip install 'veil[postgres]'") from exc
    return psycopg, psycopg_pool


# The scope index is on this expression, not on (tenant, scope), so that a lookup by token or by
# blind index can use one index only: see the module docstring.
_SCOPE_KEY = "(tenant || E'\\x1f' || scope)"


def _schema_sql(schema: str) -> str:
    return f"""
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
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
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (token, tenant, scope),
    UNIQUE (blind_index, tenant, scope)
);
CREATE INDEX IF NOT EXISTS mappings_scope ON {schema}.mappings ({_SCOPE_KEY}, seq);
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
INSERT INTO {schema}.meta (name, value) VALUES ('schema_version', '{SCHEMA_VERSION}') ON CONFLICT DO NOTHING;
"""


class _WriteConflict(VaultUnavailable):
    """A transaction the server rolled back (unique violation, deadlock): nothing was written, retry."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class PostgresVault(SQLVault):
    """A Vault (and DataKeyStore) in PostgreSQL; thread-safe, and shareable by any number of processes.

    `pool_size` is the most connections this handle opens; `timeout` how long a call waits for
    one (and for the server at start-up) before `VaultUnavailable`; a pooled connection idle for
    more than `idle_check` seconds is checked with an empty query before use (0: always).
    """

    name = "postgres"
    record_order = "seq"

    def __init__(
        self, dsn: str, *, schema: str = "veil", pool_size: int = 10, timeout: float = 10.0, idle_check: float = 1.0
    ) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigError(f"PostgreSQL schema name must match {_SCHEMA_NAME.pattern}, got {schema!r}")
        if pool_size < 1:
            raise ConfigError(f"pool_size must be at least 1, got {pool_size}")
        self._psycopg, pool_module = _psycopg()
        self._pool_errors = (pool_module.PoolTimeout, pool_module.PoolClosed)
        self.schema = schema
        self.mark = "%s"
        self.mappings, self.counters, self.data_keys_table = (f"{schema}.mappings", f"{schema}.counters",
                                                               f"{schema}.data_keys")  # fmt: skip
        self._idle_check = idle_check
        self._returned: WeakKeyDictionary[Any, float] = WeakKeyDictionary()
        read_committed = self._psycopg.IsolationLevel.READ_COMMITTED

        def configure(connection: Any) -> None:
            connection.isolation_level = read_committed

        self._pool = pool_module.ConnectionPool(
            dsn, min_size=1, max_size=pool_size, timeout=timeout, open=False, kwargs={"autocommit": True},
            configure=configure, check=self._check, name=f"veil-{schema}",
        )  # fmt: skip
        try:
            self._pool.open(wait=True, timeout=timeout)
        except Exception as exc:
            self._pool.close()  # its workers would otherwise keep reconnecting
            raise VaultUnavailable(f"cannot connect to the PostgreSQL vault ({type(exc).__name__})") from None
        with self._transaction() as connection:
            # Concurrent first starts: creating the schema goes one process at a time.
            connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s), 0)", (f"veil:{schema}",))
            connection.execute(_schema_sql(schema))
            row = connection.execute(f"SELECT value FROM {schema}.meta WHERE name = 'schema_version'").fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            self._pool.close()
            raise VaultUnavailable(
                f"PostgreSQL vault schema {schema} has version {row and row[0]}; this veil expects {SCHEMA_VERSION}"
            )

    # -- connections ------------------------------------------------------------------------

    def _check(self, connection: Any) -> None:
        """The pool's check on handing out a connection: only those idle for a while pay a round trip."""
        returned = self._returned.get(connection)
        if returned is not None and time.monotonic() - returned >= self._idle_check:
            connection.execute("")

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A pooled connection in autocommit mode: one statement, one round trip."""
        errors = self._psycopg.errors
        try:
            with self._pool.connection() as connection:
                try:
                    yield connection
                finally:
                    self._returned[connection] = time.monotonic()
        except (errors.TransactionRollback, errors.UniqueViolation) as exc:
            # Not chained: the server's detail names the conflicting key (tenant, scope, blind index).
            kind = type(exc).__name__
            raise _WriteConflict(f"the PostgreSQL vault rolled back a conflicting write ({kind})", kind) from None
        except self._psycopg.OperationalError as exc:
            if not isinstance(exc, self._pool_errors):
                self._pool.check()  # the server may have restarted: replace every broken idle connection
            raise VaultUnavailable(f"the PostgreSQL vault is unreachable ({type(exc).__name__})") from None
        except errors.UndefinedTable:
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
                # The two-key form keeps veil's locks apart from other applications' one-key locks.
                connection.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))",
                    (f"veil:{self.schema}", f"{tenant}\x1f{scope}"),
                )
            yield connection

    def _whole_scope(self, tenant: str, scope: str) -> tuple[str, tuple[object, ...]]:
        return f"{_SCOPE_KEY} = ? AND tenant = ? AND scope = ?", (f"{tenant}\x1f{scope}", tenant, scope)

    def get_or_create_many(
        self, tenant: str, scope: str, mappings: Sequence[NewMapping], make_token: TokenFactory
    ) -> list[tuple[str, bool]]:
        try:
            return super().get_or_create_many(tenant, scope, mappings, make_token)
        except _WriteConflict:
            pass  # rolled back, numbers included; the second pass reads the winner's token
        try:
            return super().get_or_create_many(tenant, scope, mappings, make_token)
        except _WriteConflict as conflict:
            if conflict.kind == "UniqueViolation":
                raise IntegrityError(
                    "a new mapping collides with a stored token twice in a row: the vault's counters are behind "
                    "its mappings (restored from an inconsistent backup?)"
                ) from None
            raise

    def close(self) -> None:
        self._pool.close()
