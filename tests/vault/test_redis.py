"""What the Redis vault adds to the contract: the window between its two scripts, its key space,
and scripts the server forgot."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from services import REDIS_URL, redis_prefix
from test_contract import mapping, token_of

from veil.crypto.envelope import Sealed
from veil.errors import IntegrityError
from veil.vault import NewMapping


@pytest.fixture
def prefix() -> Iterator[str]:
    names = redis_prefix()
    yield next(names)
    next(names, None)


@pytest.fixture
def vault(prefix: str) -> Iterator[Any]:
    from veil.vault.redis import RedisVault

    vault = RedisVault(REDIS_URL, prefix=prefix)
    yield vault
    vault.close()


def everything(client: Any, prefix: str) -> bytes:
    """Every key under the prefix and everything in it, as one blob to search."""
    out = bytearray()
    for key in client.scan_iter(f"{prefix}:*"):
        kind = client.type(key)
        if kind == b"hash":
            parts = [item for pair in client.hgetall(key).items() for item in pair]
        elif kind == b"set":
            parts = list(client.smembers(key))
        elif kind == b"zset":
            parts = client.zrange(key, 0, -1)
        else:
            parts = [client.get(key)]
        out += key + b"".join(parts)
    return bytes(out)


def racing(vault: Any, index: str, rival_expires: float | None = None) -> NewMapping:
    """A mapping whose sealing (between *reserve* and *commit*) lets a rival writer commit the same value."""

    def seal(token: str) -> Sealed:
        vault.get_or_create("t", "s", mapping(index, expires=rival_expires), token_of)
        return Sealed("dk_test", f"sealed:{token}".encode())

    return NewMapping("EMAIL", index, seal)


def test_a_value_committed_by_a_rival_between_the_scripts_keeps_the_rivals_token(vault: Any) -> None:
    token, created = vault.get_or_create("t", "s", racing(vault, "bi-1"), token_of)
    # The rival reserved number 2 after ours (1) and committed first: its token wins, ours is unused.
    assert (token, created) == ("{{EMAIL_2}}", False)
    assert vault.lookup("t", "s", "{{EMAIL_1}}") is None
    record = vault.lookup("t", "s", token)
    assert record is not None and record.sealed.ciphertext == b"sealed:{{EMAIL_2}}"
    assert vault.get_or_create("t", "s", mapping("bi-2"), token_of) == ("{{EMAIL_3}}", True)


def test_a_rivals_mapping_that_expired_before_the_commit_is_not_handed_out(vault: Any) -> None:
    token, created = vault.get_or_create("t", "s", racing(vault, "bi-1", rival_expires=time.time() - 1), token_of)
    assert (token, created) == ("{{EMAIL_1}}", True)
    record = vault.lookup("t", "s", token)
    assert record is not None and record.sealed.ciphertext == b"sealed:{{EMAIL_1}}"
    assert vault.find("t", "s", "bi-1") == token
    assert vault.purge_expired() == 0  # the rival's expired mapping went when ours replaced it


def test_a_token_factory_that_repeats_itself_is_refused_not_overwritten(vault: Any) -> None:
    vault.get_or_create("t", "s", mapping("bi-1"), token_of)
    with pytest.raises(IntegrityError, match="one-to-one"):
        vault.get_or_create("t", "s", mapping("bi-2"), lambda entity, number: "{{EMAIL_1}}")
    record = vault.lookup("t", "s", "{{EMAIL_1}}")
    assert record is not None and record.blind_index == "bi-1"
    assert vault.find("t", "s", "bi-2") is None


def test_scripts_the_server_forgot_are_loaded_again(vault: Any) -> None:
    vault.get_or_create("t", "s", mapping("bi-1"), token_of)
    vault._redis.script_flush()
    assert vault.get_or_create("t", "s", mapping("bi-2"), token_of) == ("{{EMAIL_2}}", True)
    assert vault.find("t", "s", "bi-1") == "{{EMAIL_1}}"


def test_every_key_is_under_the_prefix_and_the_tenant(vault: Any, prefix: str) -> None:
    vault.get_or_create("tenant-a", "s", mapping("bi-1", subject="subj"), token_of)
    vault.get_or_create("tenant-b", "s", mapping("bi-1", expires=time.time() + 60), token_of)
    keys = sorted(key.decode() for key in vault._redis.scan_iter(f"{prefix}:*"))
    tenant_a, tenant_b = b"tenant-a".hex(), b"tenant-b".hex()
    shared = {f"{prefix}:expiring"}
    assert all(key in shared or key.startswith((f"{prefix}:{tenant_a}:", f"{prefix}:{tenant_b}:")) for key in keys)
    assert f"{prefix}:{tenant_a}:subject:{b'subj'.hex()}" in keys


def test_erasing_a_subject_leaves_no_blind_index_behind(vault: Any, prefix: str) -> None:
    vault.get_or_create("t", "s1", mapping("bi-secret", subject="subj", expires=time.time() + 60), token_of)
    vault.get_or_create("t", "s2", mapping("bi-other"), token_of)
    assert vault.erase_subject("t", "subj") == 1
    stored = everything(vault._redis, prefix)
    assert b"bi-secret" not in stored
    assert b"bi-other" in stored


def test_purging_clears_the_index_and_the_expiry_queue(vault: Any, prefix: str) -> None:
    vault.get_or_create("t", "s", mapping("old", expires=time.time() - 1), token_of)
    vault.get_or_create("t", "s", mapping("new", expires=time.time() + 60), token_of)
    assert vault.purge_expired() == 1
    index = vault._redis.hgetall(f"{prefix}:{b't'.hex()}:{b's'.hex()}:idx")
    assert set(index) == {b"new"}
    assert vault._redis.zcard(f"{prefix}:expiring") == 1


def test_a_record_missing_a_field_is_an_integrity_error(vault: Any, prefix: str) -> None:
    token, _ = vault.get_or_create("t", "s", mapping("bi-1"), token_of)
    vault._redis.hdel(f"{prefix}:{b't'.hex()}:{b's'.hex()}:rec:{token}", "ciphertext")
    with pytest.raises(IntegrityError, match="corrupt") as error:
        vault.lookup("t", "s", token)
    assert "bi-1" not in str(error.value)
