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
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from veil.crypto.envelope import Sealed
from veil.crypto.keyring import DataKey
from veil.crypto.keys import KeyRef
from veil.errors import ConfigError, IntegrityError, VaultUnavailable
from veil.vault.base import NewMapping, TokenFactory, VaultRecord

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

_COLUMNS = "tenant, scope, token, entity, blind_index, key_id, ciphertext, subject, created, expires"


def _record(row: Any) -> VaultRecord:
    tenant, scope, token, entity, blind_index, key_id, ciphertext, subject, created, expires = row
    if not isinstance(ciphertext, bytes) or not isinstance(key_id, str):
        raise IntegrityError("a vault row is corrupt (ciphertext or key id of the wrong type)")
    return VaultRecord(
        tenant=str(tenant),
        scope=str(scope),
        token=str(token),
        entity=str(entity),
        blind_index=str(blind_index),
        sealed=Sealed(key_id, ciphertext),
        subject=None if subject is None else str(subject),
        created=float(created),
        expires=None if expires is None else float(expires),
    )


def _data_key(row: Any) -> DataKey:
    key_id, tenant, purpose, wrapped, kek_id, kek_version, created, active = row
    if purpose not in ("data", "index") or not isinstance(wrapped, bytes):
        raise IntegrityError(f"data key {key_id} is corrupt in the vault")
    return DataKey(
        key_id=str(key_id),
        tenant=str(tenant),
        purpose=purpose,
        wrapped=wrapped,
        kek=KeyRef(str(kek_id), int(kek_version)),
        created=float(created),
        active=bool(active),
    )


class SQLiteVault:
    """A Vault (and DataKeyStore) in one SQLite file."""

    name = "sqlite"

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

    def _query(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        try:
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise VaultUnavailable(f"the SQLite vault {self.path} cannot be read ({exc})") from None

    # -- Vault --------------------------------------------------------------------------------

    @property
    def keys(self) -> SQLiteVault:
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
        for chunk_start in range(0, len(indexes), 500):
            chunk = indexes[chunk_start : chunk_start + 500]
            marks = ", ".join("?" * len(chunk))
            for blind_index, token, expires in self._query(
                f"SELECT blind_index, token, expires FROM veil_mappings WHERE tenant = ? AND scope = ? "
                f"AND blind_index IN ({marks})",
                (tenant, scope, *chunk),
            ):
                if expires is None or float(expires) > now:
                    found[str(blind_index)] = (str(token), False)
        missing = [m for m in {m.blind_index: m for m in mappings}.values() if m.blind_index not in found]
        if missing:
            with self._transaction() as connection:
                for mapping in missing:
                    found[mapping.blind_index] = self._create(
                        connection, tenant=tenant, scope=scope, mapping=mapping, make_token=make_token, now=now
                    )
        return [found[m.blind_index] for m in mappings]

    def _create(
        self,
        connection: sqlite3.Connection,
        *,
        tenant: str,
        scope: str,
        mapping: NewMapping,
        make_token: TokenFactory,
        now: float,
    ) -> tuple[str, bool]:
        # Inside the write transaction: another writer may have created it since our read.
        row = connection.execute(
            "SELECT token, expires FROM veil_mappings WHERE tenant = ? AND scope = ? AND blind_index = ?",
            (tenant, scope, mapping.blind_index),
        ).fetchone()
        if row is not None:
            if row[1] is None or row[1] > now:
                return str(row[0]), False
            connection.execute(
                "DELETE FROM veil_mappings WHERE tenant = ? AND scope = ? AND token = ?", (tenant, scope, row[0])
            )
        number = connection.execute(
            "INSERT INTO veil_counters (tenant, scope, entity, last) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (tenant, scope, entity) DO UPDATE SET last = last + 1 RETURNING last",
            (tenant, scope, mapping.entity),
        ).fetchone()[0]
        token = make_token(mapping.entity, int(number))
        sealed = mapping.seal(token)
        connection.execute(
            f"INSERT INTO veil_mappings ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (tenant, scope, token, mapping.entity, mapping.blind_index, sealed.key_id, sealed.ciphertext,
             mapping.subject, now, mapping.expires),
        )  # fmt: skip
        return token, True

    def lookup(self, tenant: str, scope: str, token: str) -> VaultRecord | None:
        rows = self._query(
            f"SELECT {_COLUMNS} FROM veil_mappings WHERE tenant = ? AND scope = ? AND token = ?",
            (tenant, scope, token),
        )
        if not rows:
            return None
        record = _record(rows[0])
        return None if record.expired() else record

    def find(self, tenant: str, scope: str, blind_index: str) -> str | None:
        rows = self._query(
            "SELECT token FROM veil_mappings WHERE tenant = ? AND scope = ? AND blind_index = ? "
            "AND (expires IS NULL OR expires > ?)",
            (tenant, scope, blind_index, time.time()),
        )
        return str(rows[0][0]) if rows else None

    def records(self, tenant: str, scope: str) -> list[VaultRecord]:
        rows = self._query(
            f"SELECT {_COLUMNS} FROM veil_mappings WHERE tenant = ? AND scope = ? "
            "AND (expires IS NULL OR expires > ?) ORDER BY created, rowid",
            (tenant, scope, time.time()),
        )
        return [_record(row) for row in rows]

    def _delete(self, where: str, params: tuple[object, ...]) -> int:
        with self._transaction() as connection:
            return connection.execute(f"DELETE FROM veil_mappings WHERE {where}", params).rowcount

    def erase_scope(self, tenant: str, scope: str) -> int:
        return self._delete("tenant = ? AND scope = ?", (tenant, scope))

    def erase_subject(self, tenant: str, subject: str) -> int:
        return self._delete("tenant = ? AND subject = ?", (tenant, subject))

    def purge_expired(self, now: float | None = None) -> int:
        return self._delete("expires IS NOT NULL AND expires <= ?", (time.time() if now is None else now,))

    def ping(self) -> None:
        self._query("SELECT 1", ())

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    # -- DataKeyStore ---------------------------------------------------------------------------

    def data_keys(self, tenant: str | None = None) -> list[DataKey]:
        sql = "SELECT key_id, tenant, purpose, wrapped, kek_id, kek_version, created, active FROM veil_data_keys"
        rows = self._query(sql + " WHERE tenant = ?", (tenant,)) if tenant is not None else self._query(sql, ())
        return [_data_key(row) for row in rows]

    def add_data_key(self, key: DataKey) -> DataKey:
        with self._transaction() as connection:
            row = connection.execute(
                "SELECT key_id, tenant, purpose, wrapped, kek_id, kek_version, created, active FROM veil_data_keys "
                "WHERE tenant = ? AND purpose = ? AND active = 1",
                (key.tenant, key.purpose),
            ).fetchone()
            if row is not None:
                return _data_key(row)
            connection.execute(
                "INSERT INTO veil_data_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key.key_id,
                    key.tenant,
                    key.purpose,
                    key.wrapped,
                    key.kek.key_id,
                    key.kek.version,
                    key.created,
                    int(key.active),
                ),
            )
        return key

    def replace_data_key(self, key: DataKey) -> None:
        with self._transaction() as connection:
            connection.execute(
                "UPDATE veil_data_keys SET wrapped = ?, kek_id = ?, kek_version = ?, active = ? WHERE key_id = ?",
                (key.wrapped, key.kek.key_id, key.kek.version, int(key.active), key.key_id),
            )
