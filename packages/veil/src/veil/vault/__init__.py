"""Vaults: where token ↔ sealed value mappings live. See `veil.vault.base` for the contract.

Backends: `MemoryVault` (tests), `SQLiteVault` (embedded default); PostgreSQL and Redis for
several processes or machines.
"""

from veil.vault.base import NewMapping, TokenFactory, Vault, VaultRecord
from veil.vault.memory import MemoryVault
from veil.vault.sqlite import SQLiteVault

__all__ = ["MemoryVault", "NewMapping", "SQLiteVault", "TokenFactory", "Vault", "VaultRecord"]
