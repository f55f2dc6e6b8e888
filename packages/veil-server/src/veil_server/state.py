"""The server's state database: API keys, usage, approvals, audit and webhooks.

One URL (`server.state_url`) names it: a SQLite file for one replica (the default,
`$VEIL_HOME/server.db`), or `postgresql://…` shared by every replica. Stores write portable SQL
with `?` placeholders (turned into `%s` for PostgreSQL) and create their tables idempotently
with `migrate`; the few statements that differ between the two take `state.dialect`.

    state = StateDB.open(settings)
    state.migrate("usage", ["CREATE TABLE IF NOT EXISTS usage (...)"])
    with state.transaction() as tx:
        tx.execute("INSERT INTO usage (...) VALUES (?, ?) ON CONFLICT DO NOTHING", (a, b))
        rows = tx.fetchall("SELECT ... WHERE tenant = ?", (tenant,))

A connection failure is `StateUnavailable` (the server answers 503 and fails closed); no
message carries the URL's password or a stored value.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

Dialect = Literal["sqlite", "postgresql"]

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class StateUnavailable(Exception):
    """The state database cannot be reached (the message names the backend, never the URL)."""


class Transaction(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...


class _SQLiteTransaction:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._connection.execute(sql, tuple(params)).rowcount

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._connection.execute(sql, tuple(params)).fetchall())

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = self._connection.execute(sql, tuple(params)).fetchone()
        return tuple(row) if row is not None else None


def _postgres_sql(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class _PostgresTransaction:
    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = self._connection.execute(_postgres_sql(sql), tuple(params))
        return int(cursor.rowcount)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._connection.execute(_postgres_sql(sql), tuple(params)).fetchall()]

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = self._connection.execute(_postgres_sql(sql), tuple(params)).fetchone()
        return tuple(row) if row is not None else None


class StateDB:
    """A SQLite file or a PostgreSQL schema, behind one small transactional interface."""

    dialect: Dialect

    def __init__(
        self,
        url: str,
        *,
        schema: str = "veil_server",
        pool_size: int = 8,
        connect_timeout: float = 10.0,
        acquire_timeout: float = 3.0,
    ) -> None:
        """`acquire_timeout`: how long a transaction waits for a PostgreSQL connection before
        `StateUnavailable` (the pool's default, 30 s, would hold every request that long in an outage)."""
        self._acquire_timeout = acquire_timeout
        self._lock = threading.Lock()
        # Transactions in flight, and whether close() was called: close() waits for the first to
        # end (a connection closed under another thread's statement crashes the process) and new
        # transactions are refused once it has started.
        self._idle = threading.Condition(self._lock)
        self._active = 0
        self._closed = False
        self._migrated: set[str] = set()
        self._migrating = threading.Lock()
        self._local = threading.local()
        self._pool: Any = None
        self._connections: list[sqlite3.Connection] = []
        self._memory: sqlite3.Connection | None = None
        self._memory_lock = threading.RLock()
        if url.startswith(("postgresql://", "postgres://")):
            if not _SCHEMA_NAME.fullmatch(schema):
                raise ValueError("state schema: lower-case letters, digits and _ only")
            try:
                import psycopg_pool  # noqa: PLC0415
            except ImportError as exc:
                raise ValueError("a PostgreSQL state_url needs psycopg: pip install 'veil[postgres]'") from exc
            self.dialect = "postgresql"
            self.schema = schema
            self._pool = psycopg_pool.ConnectionPool(
                url,
                min_size=1,
                max_size=pool_size,
                open=False,
                kwargs={"options": f"-c search_path={schema}", "autocommit": False},
                check=psycopg_pool.ConnectionPool.check_connection,
            )
            try:
                self._pool.open(wait=True, timeout=connect_timeout)
            except Exception as exc:
                self._pool.close()
                raise StateUnavailable(f"PostgreSQL state database unreachable ({type(exc).__name__})") from None
            # Replicas starting together race on CREATE SCHEMA IF NOT EXISTS (a unique violation
            # in pg_namespace): one at a time, under a transaction-scoped advisory lock.
            with self._pool.connection() as connection, connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"veil_server.schema.{schema}",))
                connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        else:
            self.dialect = "sqlite"
            self.schema = "main"
            path = Path(url.removeprefix("sqlite://"))
            if str(path) == ":memory:":
                # One connection for every thread (each connection to ":memory:" is a database of its
                # own), used by one transaction at a time.
                self._memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            else:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                path.touch(mode=0o600, exist_ok=True)  # key digests and the token secret: owner only
            self.path = path

    @classmethod
    def for_url(cls, url: str | None, *, connect_timeout: float = 10.0) -> StateDB:
        """`url`, or the default SQLite file in $VEIL_HOME (else .veil). "memory" is a SQLite
        database in this process, gone when it exits (tests, trials with a vault in memory).
        `connect_timeout`: how long a PostgreSQL database may take to accept a first connection."""
        if url == "memory":
            url = ":memory:"
        if not url:
            url = str(Path(os.environ.get("VEIL_HOME") or ".veil") / "server.db")
        return cls(url, connect_timeout=connect_timeout)

    # -- connections -------------------------------------------------------------------------

    def _sqlite(self) -> sqlite3.Connection:
        if self._memory is not None:
            return self._memory
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=30000")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One transaction: committed when the block ends, rolled back when it raises.

        SQLite transactions start with BEGIN IMMEDIATE (the write lock up front), so two
        writers never fail each other with 'database is locked' half-way through."""
        if self.dialect == "sqlite":
            with self._sqlite_transaction("BEGIN IMMEDIATE") as tx:
                yield tx
            return
        with self._in_flight(), self._postgres_transaction() as tx:
            yield tx

    @contextmanager
    def _in_flight(self) -> Iterator[None]:
        with self._idle:
            if self._closed:
                raise StateUnavailable("the state database is closed (the server is stopping)")
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                if not self._active:
                    self._idle.notify_all()

    @contextmanager
    def _postgres_transaction(self) -> Iterator[Transaction]:
        try:
            context = self._pool.connection(timeout=self._acquire_timeout)
            connection = context.__enter__()
        except Exception as exc:
            raise StateUnavailable(f"PostgreSQL state database unreachable ({type(exc).__name__})") from None
        try:
            with connection.transaction():
                yield _PostgresTransaction(connection)
        except BaseException as exc:
            context.__exit__(type(exc), exc, exc.__traceback__)
            if _is_connection_error(exc):
                raise StateUnavailable(f"PostgreSQL state database unreachable ({type(exc).__name__})") from None
            raise
        context.__exit__(None, None, None)

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        """A transaction for reads only. On SQLite it takes no write lock (BEGIN DEFERRED: in WAL
        mode readers never wait for writers), so per-request lookups stay fast under write load."""
        if self.dialect == "sqlite":
            with self._sqlite_transaction("BEGIN") as tx:
                yield tx
            return
        with self.transaction() as tx:
            yield tx

    @contextmanager
    def _sqlite_transaction(self, begin: str) -> Iterator[Transaction]:
        lock = self._memory_lock if self._memory is not None else contextlib.nullcontext()
        with self._in_flight(), lock:
            connection = self._sqlite()
            connection.execute(begin)
            try:
                yield _SQLiteTransaction(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def ensure(self, name: str, statements: Sequence[str]) -> None:
        """`migrate` once per StateDB (later calls return at once): for stores that create their
        tables on first use rather than at start-up, so that a database down at start-up only
        refuses the requests that need it."""
        if name in self._migrated:
            return
        with self._migrating:
            if name not in self._migrated:
                self.migrate(name, statements)
                self._migrated.add(name)

    def migrate(self, name: str, statements: Sequence[str]) -> None:
        """Create a store's tables and indexes (idempotent: every statement says IF NOT EXISTS)."""
        with self.transaction() as tx:
            if self.dialect == "postgresql":
                # One migrator at a time across replicas: CREATE … IF NOT EXISTS races otherwise.
                tx.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"veil_server.migrate.{name}",))
            for statement in statements:
                tx.execute(statement)

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new transactions, wait (up to `timeout` seconds) for those in flight, then close."""
        with self._idle:
            self._closed = True
            self._idle.wait_for(lambda: not self._active, timeout=timeout)
            if self._active:
                return  # still in use after the timeout: leave the connections to the process's exit
            for connection in self._connections:
                connection.close()
            self._connections.clear()
            if self._memory is not None:
                self._memory.close()
        if self._pool is not None:
            self._pool.close()


def _is_connection_error(exc: BaseException) -> bool:
    try:
        import psycopg  # noqa: PLC0415
    except ImportError:
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
