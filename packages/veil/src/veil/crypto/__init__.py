"""Envelope encryption for the vault.

    key-encryption key (KEK, held by a KeyProvider: key file, environment, PKCS#11 HSM)
        └── wraps data keys (DEK, AES-256, one per tenant and purpose, stored wrapped)
                └── encrypt vault rows with AES-256-GCM, associated data = tenant + scope + token

Rotating the KEK re-wraps the data keys (a few rows) without touching the vault rows; old KEK
versions stay readable until they are retired. Only `cryptography` primitives are used.
"""

from veil.crypto.envelope import Sealed, associated_data, open_sealed, seal
from veil.crypto.keyring import DataKey, DataKeyStore, KeyRing, MemoryDataKeyStore
from veil.crypto.keys import EnvKeyProvider, EphemeralKeyProvider, KeyProvider, KeyRef, LocalKeyFileProvider

__all__ = [
    "DataKey",
    "DataKeyStore",
    "EnvKeyProvider",
    "EphemeralKeyProvider",
    "KeyProvider",
    "KeyRef",
    "KeyRing",
    "LocalKeyFileProvider",
    "MemoryDataKeyStore",
    "Sealed",
    "associated_data",
    "open_sealed",
    "seal",
]
