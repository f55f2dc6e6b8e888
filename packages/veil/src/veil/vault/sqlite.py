"""SQLite vault: the embedded default. One file, WAL journal, durable commits.

Writers serialise on `BEGIN IMMEDIATE`, so threads and processes sharing the file never give
one value two tokens; uniqueness is also enforced by the schema. Each thread has its own
connection.

Durability: with `durability="process"` (the default, `synchronous=NORMAL` in WAL mode) a
committed mapping survives the crash or kill of any process using the vault — a token handed to
a caller can always be restored — but the last commits may be lost if the machine itself loses
power. `durability="machine"` (`synchronous=FULL`) syncs every commit to disk, at the cost of an
fsync per new value.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from veil.errors import ConfigError, VaultUnavailable
from veil.vault.sql import SQLVault

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS veil_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS veil_mappings (
    tenant TEXT NOT NULL,
    scope TEXT NOT NULL,
    token TEXT NOT NULL,
    entity TEXT NOT NULL,
    blind_index TEXT NOT NULL,
    key_id TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    subject TEXT,
    created REAL NOT NULL,
    expires REAL,
    PRIMARY KEY (tenant, scope, token),
    UNIQUE (tenant, scope, blind_index)
);
CREATE INDEX IF NOT EXISTS veil_mappings_subject ON veil_mappings (tenant, subject) WHERE subject IS NOT NULL;
CREATE INDEX IF NOT EXISTS veil_mappings_expires ON veil_mappings (expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS veil_counters (
    tenant TEXT NOT NULL,
    scope TEXT NOT NULL,
    entity TEXT NOT NULL,
    last INTEGER NOT NULL,
    PRIMARY KEY (tenant, scope, entity)
);
CREATE TABLE IF NOT EXISTS veil_data_keys (
    key_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    purpose TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    kek_id TEXT NOT NULL,
    kek_version INTEGER NOT NULL,
    created REAL NOT NULL,
    active INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS veil_data_keys_one_active ON veil_data_keys (tenant, purpose) WHERE active = 1;
"""


class SQLiteVault(SQLVault):
    """A Vault (and DataKeyStore) in one SQLite file."""

    name = "sqlite"
    record_order = "created, rowid"

    def __init__(self, path: str | Path, *, timeout: float = 30.0, durability: str = "process") -> None:
        if durability not in ("process", "machine"):
            raise ConfigError(f"durability must be 'process' or 'machine', got {durability!r}")
        self.path = str(path)
        self.timeout = timeout
        self._synchronous = "FULL" if durability == "machine" else "NORMAL"
        self._local = threading.local()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # Ciphertext only, but blind indexes and scope names are nobody else's business.
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        try:
            # executescript commits on its own; every statement is idempotent.
            self._connection().executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise VaultUnavailable(f"cannot create the SQLite vault schema in {self.path} ({exc})") from None
        with self._transaction() as connection:
            connection.execute(
                "INSERT OR IGNORE INTO veil_meta (name, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        version = self._connection().execute("SELECT value FROM veil_meta WHERE name = 'schema_version'").fetchone()
        if version is None or int(version[0]) != SCHEMA_VERSION:
            raise VaultUnavailable(
                f"vault {self.path} has schema version {version and version[0]}; expected {SCHEMA_VERSION}"
            )

    # -- connections ------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            try:
                connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute(f"PRAGMA synchronous={self._synchronous}")
                connection.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            except sqlite3.Error as exc:
                raise VaultUnavailable(f"cannot open the SQLite vault {self.path} ({exc})") from None
            self._local.connection = connection
        return connection

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        if connection.in_transaction:
            # Nested use on this thread (a data key created while a mapping is being sealed):
            # a savepoint inside the outer transaction.
            connection.execute("SAVEPOINT veil_nested")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK TO veil_nested")
                connection.execute("RELEASE veil_nested")
                raise
            connection.execute("RELEASE veil_nested")
            return
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise VaultUnavailable(f"the SQLite vault {self.path} is not writable ({exc})") from None
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        else:
            connection.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[object]) -> list[Any]:
        try:
            return self._connection().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise VaultUnavailable(f"the SQLite vault {self.path} cannot be read ({exc})") from None

    def _write(self, tenant: str | None = None, scope: str | None = None) -> AbstractContextManager[Any]:
        # BEGIN IMMEDIATE takes the database's write lock: writers go one at a time, all scopes.
        return self._transaction()

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
