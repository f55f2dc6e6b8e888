"""Processes sharing one vault (a SQLite file, a PostgreSQL schema, a Redis prefix): one value, one
token and one token, one value, whatever the interleaving; and a writer killed with SIGKILL
mid-way leaves every token it handed out restorable by the others."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
from services import POSTGRES_DSN, REDIS_URL, postgres_schema, redis_prefix

from veil.crypto import KeyRing, LocalKeyFileProvider
from veil.session import value_aad
from veil.tokens import format_token
from veil.vault import NewMapping, SQLiteVault, Vault

TENANT, SCOPE = "default", "shared"
PROCESSES, CALLS, VALUES = 4, 250, 100
WRITES, KILL_AT = 1000, 300
spawn = multiprocessing.get_context("spawn")


def open_vault(kind: str, where: str) -> Vault:
    if kind == "sqlite":
        return SQLiteVault(where)
    if kind == "redis":
        from veil.vault.redis import RedisVault

        return RedisVault(REDIS_URL, prefix=where)
    from veil.vault.postgres import PostgresVault

    return PostgresVault(POSTGRES_DSN, schema=where, pool_size=2)


class Writer:
    """What a process sharing the vault does: blind index and real AES-GCM sealing from one key file."""

    def __init__(self, kind: str, where: str, keys: str) -> None:
        self.vault = open_vault(kind, where)
        self.keyring = KeyRing(LocalKeyFileProvider(keys, create=False), self.vault.keys)

    def token_for(self, value: str) -> str:
        keyring, raw = self.keyring, value.encode()
        blind_index = keyring.blind_index(TENANT, "EMAIL", value)

        def seal(token: str) -> Any:
            return keyring.encrypt(TENANT, raw, value_aad(TENANT, SCOPE, token))

        return self.vault.get_or_create(TENANT, SCOPE, NewMapping("EMAIL", blind_index, seal), format_token)[0]

    def value_of(self, token: str) -> str | None:
        record = self.vault.lookup(TENANT, SCOPE, token)
        if record is None:
            return None
        return self.keyring.decrypt(TENANT, record.sealed, value_aad(TENANT, SCOPE, token)).decode()


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """(backend, where, key file): a fresh shared vault whose keys exist before any process races."""
    keys = str(tmp_path / "keys.json")
    if request.param == "sqlite":
        names: Iterator[str] = iter([str(tmp_path / "vault.db")])
    else:
        names = postgres_schema() if request.param == "postgres" else redis_prefix()
    where = next(names)
    LocalKeyFileProvider(keys)
    Writer(request.param, where, keys).keyring.prepare(TENANT)
    yield request.param, where, keys
    next(names, None)


def _share(store: tuple[str, str, str], seed: int, start: Any, results: Any) -> None:
    writer = Writer(*store)
    pairs = []
    start.wait()  # every process begins together: the most contention
    for call in range(CALLS):
        value = f"client{(call * 7 + seed * 13) % VALUES}@exemple.ca"
        pairs.append((value, writer.token_for(value)))
    writer.vault.close()
    results.put(pairs)


def test_processes_sharing_a_vault_never_split_or_merge_tokens(store: tuple[str, str, str]) -> None:
    kind, where, keys = store
    start, results = spawn.Barrier(PROCESSES), spawn.Queue()
    workers = [spawn.Process(target=_share, args=(store, seed, start, results)) for seed in range(PROCESSES)]
    for worker in workers:
        worker.start()
    pairs = [pair for _ in workers for pair in results.get(timeout=60)]
    for worker in workers:
        worker.join()
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    assert len(pairs) == PROCESSES * CALLS
    by_value: dict[str, set[str]] = {}
    by_token: dict[str, set[str]] = {}
    for value, token in pairs:
        by_value.setdefault(value, set()).add(token)
        by_token.setdefault(token, set()).add(value)
    assert len(by_value) == VALUES
    assert all(len(tokens) == 1 for tokens in by_value.values())
    assert all(len(values) == 1 for values in by_token.values())
    replica = Writer(kind, where, keys)  # a process that wrote none of them restores them all
    assert all(replica.value_of(token) == next(iter(values)) for token, values in by_token.items())


def _write_until_killed(kind: str, where: str, keys: str, reports: Connection, control: Connection) -> None:
    writer = Writer(kind, where, keys)
    for index in range(WRITES):
        value = f"client{index}@exemple.ca"
        reports.send((writer.token_for(value), value))  # only once get_or_create has returned
        if index + 1 == KILL_AT:
            control.recv()  # the parent kills us right after letting us go on: mid-way through a write
    control.recv()  # never answered: this process only ends by SIGKILL


def test_every_token_handed_out_before_a_sigkill_restores(store: tuple[str, str, str]) -> None:
    kind, where, keys = store
    reports, report_end = spawn.Pipe(duplex=False)
    control_end, control = spawn.Pipe(duplex=False)
    writer = spawn.Process(target=_write_until_killed, args=(kind, where, keys, report_end, control_end))
    writer.start()
    report_end.close()
    received = [reports.recv() for _ in range(KILL_AT)]
    control.send("go on")
    os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
    writer.join()
    while True:  # whatever it reported before dying
        try:
            received.append(reports.recv())
        except EOFError:
            break
    assert writer.exitcode == -signal.SIGKILL
    assert KILL_AT <= len(received) <= WRITES

    survivor = Writer(kind, where, keys)
    for token, value in received:
        assert survivor.value_of(token) == value
    # The survivor carries on without reusing a number, and gives a reported value its token back.
    token, value = received[-1]
    assert survivor.token_for(value) == token
    assert survivor.token_for("new@exemple.ca") not in {token for token, _ in received}
