"""Several processes sharing one vault: one value, one token; one token, one value; replicas
restore each other's tokens."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import POSTGRES_DSN, REDIS_URL, postgres_schema, redis_prefix

from veil.crypto import LocalKeyFileProvider
from veil.session import Veil
from veil.vault import SQLiteVault, Vault

PROCESSES = 4
CALLS = 250
VALUES = 100


def _open(kind: str, where: str) -> Vault:
    if kind == "sqlite":
        return SQLiteVault(where)
    if kind == "redis":
        from veil.vault.redis import RedisVault

        return RedisVault(REDIS_URL, prefix=where)
    from veil.vault.postgres import PostgresVault

    return PostgresVault(POSTGRES_DSN, schema=where, pool_size=2)


def _worker(kind: str, where: str, keys: str, seed: int) -> list[tuple[str, str]]:
    veil = Veil(vault=_open(kind, where), keys=LocalKeyFileProvider(keys), audit_traffic=False)
    session = veil.session("shared")
    pairs = []
    for call in range(CALLS):
        value = f"client{(call * 7 + seed * 13) % VALUES}@exemple.ca"
        pairs.append((value, session.token_for("EMAIL", value)))
    veil.close()
    return pairs


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield "sqlite", str(tmp_path / "vault.db")
        return
    names = postgres_schema() if request.param == "postgres" else redis_prefix()
    yield request.param, next(names)
    next(names, None)


def test_processes_sharing_a_vault_never_split_or_merge_tokens(store: tuple[str, str], tmp_path: Path) -> None:
    kind, where = store
    keys = str(tmp_path / "keys.json")
    Veil(vault=_open(kind, where), keys=LocalKeyFileProvider(keys)).keyring.prepare("default")
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        results = pool.starmap(_worker, [(kind, where, keys, seed) for seed in range(PROCESSES)])
    by_value: dict[str, set[str]] = {}
    by_token: dict[str, set[str]] = {}
    for value, token in (pair for pairs in results for pair in pairs):
        by_value.setdefault(value, set()).add(token)
        by_token.setdefault(token, set()).add(value)
    assert all(len(tokens) == 1 for tokens in by_value.values())
    assert all(len(values) == 1 for values in by_token.values())
    assert len(by_value) == VALUES
    # Another "replica" (a new process's view) restores every token.
    replica = Veil(vault=_open(kind, where), keys=LocalKeyFileProvider(keys)).session("shared")
    for token, values in by_token.items():
        assert replica.restore(token) == next(iter(values))
