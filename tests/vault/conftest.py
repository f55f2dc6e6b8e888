"""Vault backends under test. Each backend runs the same contract (test_contract.py).

PostgreSQL and Redis backends are tested against real servers on 127.0.0.1; on a laptop
without them those tests skip, but under CI (CI=true) they must connect or fail.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from veil.vault import MemoryVault, SQLiteVault, Vault

VaultFactory = Callable[[], Vault]


def require_service(name: str, reason: str) -> None:
    """Skip on a developer's machine; fail under CI, where the service must be there."""
    if os.environ.get("CI"):
        pytest.fail(f"{name} is required under CI: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


@pytest.fixture(params=["memory", "sqlite"])
def vault_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VaultFactory]:
    """A factory of vaults that share one store (two factories' vaults see the same data)."""
    opened: list[Vault] = []
    if request.param == "memory":
        shared = MemoryVault()

        def make() -> Vault:
            return shared
    else:
        path = tmp_path / "vault.db"

        def make() -> Vault:
            vault = SQLiteVault(path)
            opened.append(vault)
            return vault

    yield make
    for vault in opened:
        vault.close()


@pytest.fixture
def vault(vault_factory: VaultFactory) -> Vault:
    return vault_factory()
