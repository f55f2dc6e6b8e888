"""Key providers (file, environment, ephemeral) and the KeyRing."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from veil.crypto import (
    EnvKeyProvider,
    EphemeralKeyProvider,
    KeyRef,
    KeyRing,
    LocalKeyFileProvider,
    MemoryDataKeyStore,
    associated_data,
)
from veil.errors import ConfigError, IntegrityError, KeyUnavailable


def key64() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_the_key_file_is_created_private_and_refused_when_others_can_read_it(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    LocalKeyFileProvider(path)
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)
    with pytest.raises(KeyUnavailable, match="chmod 600"):
        LocalKeyFileProvider(path)


def test_a_missing_key_file_is_not_created_when_asked_not_to(tmp_path: Path) -> None:
    with pytest.raises(KeyUnavailable, match="veil keys init"):
        LocalKeyFileProvider(tmp_path / "none.json", create=False)


def test_rotation_in_one_process_is_seen_by_another(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first, second = LocalKeyFileProvider(path), LocalKeyFileProvider(path)
    v2 = first.rotate()
    wrapped = first.wrap(v2, b"k" * 32, b"aad")
    assert second.unwrap(v2, wrapped, b"aad") == b"k" * 32  # reloads on an unknown version
    first.retire(KeyRef(v2.key_id, 1))
    with pytest.raises(KeyUnavailable, match="retired"):
        LocalKeyFileProvider(path).unwrap(KeyRef(v2.key_id, 1), wrapped, b"aad")
    with pytest.raises(ConfigError):
        first.retire(v2)


def test_environment_keys_are_versioned_and_errors_name_the_variable() -> None:
    provider = EnvKeyProvider({"VEIL_KEKS": f"1:{key64()},2:{key64()}"})
    assert provider.current() == KeyRef("env", 2)
    with pytest.raises(ConfigError, match="VEIL_KEK: not base64"):
        EnvKeyProvider({"VEIL_KEK": "not base64!"})
    with pytest.raises(ConfigError, match="VEIL_KEKS"):
        EnvKeyProvider({"VEIL_KEKS": "one:abc"})
    with pytest.raises(ConfigError, match="32 bytes"):
        EnvKeyProvider({"VEIL_KEK": base64.b64encode(b"short").decode()})
    with pytest.raises(ConfigError, match="VEIL_KEK"):
        EnvKeyProvider({})
    with pytest.raises(ConfigError, match="deploying a new version"):
        provider.rotate()


def test_the_keyring_binds_values_to_tenant_scope_and_token() -> None:
    keyring = KeyRing(EphemeralKeyProvider(), MemoryDataKeyStore())
    aad = associated_data("veil-value", "t", "s", "{{EMAIL_1}}")
    sealed = keyring.encrypt("t", b"jean@exemple.ca", aad)
    assert keyring.decrypt("t", sealed, aad) == b"jean@exemple.ca"
    for moved in (("t", "s", "{{EMAIL_2}}"), ("t", "other", "{{EMAIL_1}}"), ("u", "s", "{{EMAIL_1}}")):
        with pytest.raises(IntegrityError):
            keyring.decrypt("t", sealed, associated_data("veil-value", *moved))
    with pytest.raises(KeyUnavailable):
        keyring.decrypt("other-tenant", sealed, aad)  # its data key belongs to tenant t


def test_blind_indexes_differ_per_tenant_and_per_kind_but_not_per_call() -> None:
    keyring = KeyRing(EphemeralKeyProvider(), MemoryDataKeyStore())
    same = keyring.blind_index("t", "CA_SIN", "130692544")
    assert keyring.blind_index("t", "CA_SIN", "130692544") == same
    assert keyring.blind_index("u", "CA_SIN", "130692544") != same
    assert keyring.blind_index("t", "PHONE", "130692544") != same


def test_a_rotated_data_key_keeps_old_values_readable() -> None:
    keyring = KeyRing(EphemeralKeyProvider(), MemoryDataKeyStore())
    aad = associated_data("x")
    old = keyring.encrypt("t", b"old", aad)
    new_key = keyring.rotate_data_key("t")
    new = keyring.encrypt("t", b"new", aad)
    assert new.key_id == new_key.key_id != old.key_id
    assert keyring.decrypt("t", old, aad) == b"old"
    assert keyring.decrypt("t", new, aad) == b"new"


def test_kek_rotation_rewraps_every_data_key() -> None:
    store = MemoryDataKeyStore()
    keyring = KeyRing(EphemeralKeyProvider(), store)
    sealed = keyring.encrypt("t", b"value", associated_data("x"))
    keyring.blind_index("t", "EMAIL", "a@b.ca")
    ref, count = keyring.rotate()
    assert count == 2
    assert {key.kek for key in store.data_keys()} == {ref}
    fresh = KeyRing(keyring.provider, store)  # a new process: nothing cached
    assert fresh.decrypt("t", sealed, associated_data("x")) == b"value"
