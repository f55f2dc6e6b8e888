"""The state database behaves the same on SQLite and PostgreSQL (transactions, placeholders, migrations)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from veil_server.state import StateDB, StateUnavailable

TABLE = ["CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL, note TEXT)"]


def test_transactions_commit_roll_back_and_count_rows(state: StateDB) -> None:
    state.migrate("t", TABLE)
    state.migrate("t", TABLE)  # idempotent
    with state.transaction() as tx:
        assert tx.execute("INSERT INTO counters (name, value, note) VALUES (?, ?, ?)", ("a", 1, "50% ?")) == 1

    def insert_then_fail() -> None:
        with state.transaction() as tx:
            tx.execute("INSERT INTO counters (name, value) VALUES (?, ?)", ("b", 2))
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        insert_then_fail()
    with state.transaction() as tx:
        assert tx.fetchall("SELECT name, value, note FROM counters ORDER BY name") == [("a", 1, "50% ?")]
        assert tx.fetchone("SELECT value FROM counters WHERE name = ?", ("zzz",)) is None
        assert tx.execute("INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING", ("a", 9)) == 0


def test_concurrent_increments_are_not_lost(state: StateDB) -> None:
    state.migrate("t", TABLE)
    with state.transaction() as tx:
        tx.execute("INSERT INTO counters (name, value) VALUES ('n', 0)")

    def bump() -> None:
        for _ in range(25):
            with state.transaction() as tx:
                tx.execute("UPDATE counters SET value = value + 1 WHERE name = 'n'")

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with state.transaction() as tx:
        assert tx.fetchone("SELECT value FROM counters WHERE name = 'n'") == (100,)


def test_an_unreachable_postgres_is_state_unavailable_without_the_url() -> None:
    with pytest.raises(StateUnavailable) as caught:
        StateDB("postgresql://veil:s3cret@127.0.0.1:1/nowhere", connect_timeout=1)
    assert "s3cret" not in str(caught.value) and "127.0.0.1" not in str(caught.value)


@pytest.mark.parametrize("url", ["memory", "file"])
def test_close_waits_for_a_transaction_in_another_thread_then_refuses_new_ones(url: str, tmp_path: Path) -> None:
    """A connection closed under another thread's statement crashes the process (SIGSEGV): the
    webhook dispatcher's thread may still be reading when the server stops."""
    state = StateDB.for_url("memory" if url == "memory" else str(tmp_path / "server.db"))
    state.migrate("t", TABLE)
    inside, release, finished = threading.Event(), threading.Event(), []

    def reader() -> None:
        with state.transaction() as tx:
            inside.set()
            release.wait(10)
            finished.append(tx.fetchone("SELECT COUNT(*) FROM counters"))

    thread = threading.Thread(target=reader)
    thread.start()
    assert inside.wait(10)
    closer = threading.Thread(target=state.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # waiting for the reader
    release.set()
    thread.join(10)
    closer.join(10)
    assert finished == [(0,)] and not closer.is_alive()
    with pytest.raises(StateUnavailable, match="closed"), state.transaction():
        pass
