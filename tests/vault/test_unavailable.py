"""A vault that cannot be reached is VaultUnavailable: clear, and never half-written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from veil.errors import VaultUnavailable
from veil.vault import SQLiteVault


def test_an_unreachable_postgres_is_vault_unavailable() -> None:
    pytest.importorskip("psycopg")
    from veil.vault.postgres import PostgresVault

    with pytest.raises(VaultUnavailable, match="PostgreSQL"):
        PostgresVault("postgresql://postgres@127.0.0.1:1/test", timeout=1)


def test_an_unreachable_redis_is_vault_unavailable() -> None:
    pytest.importorskip("redis")
    from veil.vault.redis import RedisVault

    with pytest.raises(VaultUnavailable, match="Redis"):
        RedisVault("redis://127.0.0.1:1/0", timeout=1)


def test_an_unwritable_sqlite_location_is_vault_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises((VaultUnavailable, OSError)):
        SQLiteVault(blocker / "vault.db")


@pytest.mark.parametrize(
    ("module", "extra", "missing"),
    [("veil.vault.postgres", "postgres", "psycopg_pool"), ("veil.vault.redis", "redis", "redis")],
)
def test_a_missing_extra_is_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch, module: str, extra: str, missing: str
) -> None:
    import importlib

    from veil.errors import ConfigError

    backend = importlib.import_module(module)  # importing the module needs no driver
    monkeypatch.setitem(sys.modules, missing, None)  # as if the extra were not installed
    opener = backend.PostgresVault if extra == "postgres" else backend.RedisVault
    with pytest.raises(ConfigError, match=rf"pip install 'veil\[{extra}\]'"):
        opener("postgresql://unused" if extra == "postgres" else "redis://unused")
