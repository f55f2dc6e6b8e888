"""An append-only, hash-chained audit log of tokenize / restore / reveal / rotate / erase events.

Each record carries ids, counts and entity types — never values — and a MAC: HMAC-SHA256, under
a key of the KeyRing, over the record and the previous record's MAC. Editing a record breaks its
MAC; deleting or reordering records breaks the chain; forging a record needs the key (held
wrapped by the KEK, so an operator with database access alone cannot rewrite history).
`AuditLog.verify()` walks the chain and reports the first problem. Deleting the most recent
records (truncation) is only detectable against a head kept elsewhere: `verify()` returns the
head MAC and sequence number to export, and accepts an expected head.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from veil.crypto.keyring import KeyRing
from veil.errors import ConfigError, IntegrityError, VaultUnavailable

AUDIT_TENANT = "__veil_audit__"
GENESIS = "0" * 64
EVENTS = frozenset({"tokenize", "restore", "reveal_request", "approve", "reveal", "reveal_refused", "rotate", "erase"})
_MAX_DETAIL_TEXT = 200


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    time: float
    event: str
    tenant: str
    actor: str | None
    details: Mapping[str, Any]
    previous: str
    mac: str = ""

    def payload(self) -> bytes:
        """The canonical bytes the MAC covers (everything but the MAC)."""
        body = {
            "seq": self.seq,
            "time": repr(self.time),
            "event": self.event,
            "tenant": self.tenant,
            "actor": self.actor,
            "details": self.details,
            "previous": self.previous,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "time": self.time, "event": self.event, "tenant": self.tenant, "actor": self.actor,
            "details": dict(self.details), "previous": self.previous, "mac": self.mac,
        }  # fmt: skip


class AuditStore(Protocol):
    def append(self, build: Callable[[int, str], AuditRecord]) -> AuditRecord:
        """Atomically: read the last (seq, mac), build the next record from them, store it."""
        ...

    def records(self) -> Iterator[AuditRecord]:
        """Every record in sequence order."""
        ...


class MemoryAuditStore:
    def __init__(self) -> None:
        self._records: list[AuditRecord] = []
        self._lock = threading.Lock()

    def append(self, build: Callable[[int, str], AuditRecord]) -> AuditRecord:
        with self._lock:
            last = self._records[-1] if self._records else None
            record = build(last.seq + 1 if last else 1, last.mac if last else GENESIS)
            self._records.append(record)
            return record

    def records(self) -> Iterator[AuditRecord]:
        return iter(list(self._records))


class SQLiteAuditStore:
    """Audit records in a SQLite file (the vault's file by default); appends serialise on BEGIN IMMEDIATE."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        self._connection().executescript(
            """
            CREATE TABLE IF NOT EXISTS veil_audit (
                seq INTEGER PRIMARY KEY,
                time REAL NOT NULL,
                event TEXT NOT NULL,
                tenant TEXT NOT NULL,
                actor TEXT,
                details TEXT NOT NULL,
                previous TEXT NOT NULL,
                mac TEXT NOT NULL
            );
            """
        )

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            try:
                connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes
            except sqlite3.Error as exc:
                raise VaultUnavailable(f"cannot open the audit log {self.path} ({exc})") from None
            self._local.connection = connection
        return connection

    def append(self, build: Callable[[int, str], AuditRecord]) -> AuditRecord:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            row = connection.execute("SELECT seq, mac FROM veil_audit ORDER BY seq DESC LIMIT 1").fetchone()
            record = build(row[0] + 1 if row else 1, row[1] if row else GENESIS)
            connection.execute(
                "INSERT INTO veil_audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (record.seq, record.time, record.event, record.tenant, record.actor,
                 json.dumps(record.details, sort_keys=True), record.previous, record.mac),
            )  # fmt: skip
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return record

    def records(self) -> Iterator[AuditRecord]:
        rows = self._connection().execute(
            "SELECT seq, time, event, tenant, actor, details, previous, mac FROM veil_audit ORDER BY seq"
        )
        for seq, at, event, tenant, actor, details, previous, mac in rows:
            try:
                parsed = json.loads(details)
            except ValueError:
                parsed = {"__corrupt__": True}
            yield AuditRecord(int(seq), float(at), str(event), str(tenant), actor, parsed, str(previous), str(mac))


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    count: int
    head_seq: int
    head_mac: str
    problems: tuple[str, ...] = field(default=())


def _check_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """Details are ids, counts and entity types: numbers, booleans, short strings, lists of them."""
    clean: dict[str, Any] = {}
    for key, value in details.items():
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if not (
                item is None
                or isinstance(item, bool | int | float)
                or (isinstance(item, str) and len(item) <= _MAX_DETAIL_TEXT)
            ):
                raise ConfigError(f"audit detail {key!r} must be an id, a count or a list of them")
        clean[key] = list(value) if isinstance(value, list | tuple) else value
    return clean


class AuditLog:
    """Records events and verifies the chain."""

    def __init__(self, store: AuditStore, keyring: KeyRing, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.keyring = keyring
        self.clock = clock

    def _mac(self, record: AuditRecord) -> str:
        return self.keyring.blind_index(AUDIT_TENANT, "audit-chain", record.payload().decode())

    def record(self, event: str, *, tenant: str, actor: str | None = None, **details: Any) -> AuditRecord:
        if event not in EVENTS:
            raise ConfigError(f"unknown audit event {event!r}; known: {', '.join(sorted(EVENTS))}")
        clean = _check_details(details)
        self.keyring.prepare(AUDIT_TENANT)

        def build(seq: int, previous: str) -> AuditRecord:
            draft = AuditRecord(seq, self.clock(), event, tenant, actor, clean, previous)
            return AuditRecord(seq, draft.time, event, tenant, actor, clean, previous, self._mac(draft))

        return self.store.append(build)

    def verify(self, *, expected_head: tuple[int, str] | None = None) -> Verification:
        previous, expected_seq, count, problems = GENESIS, 1, 0, []
        last = AuditRecord(0, 0.0, "", "", None, {}, GENESIS, GENESIS)
        for record in self.store.records():
            count += 1
            if record.seq != expected_seq:
                problems.append(
                    f"record {record.seq}: expected sequence number {expected_seq} (records deleted or reordered)"
                )
            if record.previous != previous:
                problems.append(f"record {record.seq}: does not chain to the record before it")
            unsigned = AuditRecord(record.seq, record.time, record.event, record.tenant, record.actor, record.details,
                                   record.previous)  # fmt: skip
            if self._mac(unsigned) != record.mac:
                problems.append(f"record {record.seq}: MAC mismatch (the record was edited)")
            previous, expected_seq, last = record.mac, record.seq + 1, record
            if len(problems) >= 20:
                break
        if expected_head is not None and (last.seq, last.mac) != expected_head:
            problems.append(
                f"the log ends at record {last.seq}, not at the expected head {expected_head[0]} (records truncated?)"
            )
        return Verification(not problems, count, last.seq, last.mac, tuple(problems))

    def require_intact(self) -> Verification:
        result = self.verify()
        if not result.ok:
            raise IntegrityError("audit log verification failed: " + "; ".join(result.problems[:3]))
        return result
