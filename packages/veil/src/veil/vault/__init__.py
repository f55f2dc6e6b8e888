"""Vaults: where token ↔ sealed value mappings live. See `veil.vault.base` for the contract.

Backends: `MemoryVault` (tests), `SQLiteVault` (embedded default), `veil.vault.postgres.PostgresVault`
and `veil.vault.redis.RedisVault` (extras `veil[postgres]`, `veil[redis]`, imported on use) for several
processes or machines. The SQL backends share their queries (`veil.vault.sql`).
"""

from veil.vault.base import NewMapping, TokenFactory, Vault, VaultRecord
from veil.vault.memory import MemoryVault
from veil.vault.sqlite import SQLiteVault

__all__ = ["MemoryVault", "NewMapping", "SQLiteVault", "TokenFactory", "Vault", "VaultRecord"]
