"""Vault backends under test. Each backend runs the same contract (test_contract.py).

PostgreSQL and Redis backends are tested against real servers on 127.0.0.1; on a laptop
without them those tests skip, but under CI (CI=true) they must connect or fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from services import POSTGRES_DSN, REDIS_URL, postgres_schema, redis_prefix

from veil.vault import MemoryVault, SQLiteVault, Vault

VaultFactory = Callable[[], Vault]


@pytest.fixture(params=["memory", "sqlite", "postgres", "redis"])
def vault_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VaultFactory]:
    """A factory of vaults that share one store (two factories' vaults see the same data)."""
    opened: list[Vault] = []
    schemas = None
    if request.param == "memory":
        shared = MemoryVault()

        def make() -> Vault:
            return shared
    elif request.param == "sqlite":
        path = tmp_path / "vault.db"

        def make() -> Vault:
            vault = SQLiteVault(path)
            opened.append(vault)
            return vault
    elif request.param == "postgres":
        from veil.vault.postgres import PostgresVault

        schemas = postgres_schema()
        schema = next(schemas)

        def make() -> Vault:
            vault = PostgresVault(POSTGRES_DSN, schema=schema, pool_size=4)
            opened.append(vault)
            return vault
    else:
        from veil.vault.redis import RedisVault

        schemas = redis_prefix()
        prefix = next(schemas)

        def make() -> Vault:
            vault = RedisVault(REDIS_URL, prefix=prefix)
            opened.append(vault)
            return vault

    yield make
    for vault in opened:
        vault.close()
    if schemas is not None:
        next(schemas, None)


@pytest.fixture
def vault(vault_factory: VaultFactory) -> Vault:
    return vault_factory()
