"""The key store behaves the same on SQLite and PostgreSQL: keys hashed at rest, found by id,
compared in constant time, revoked for every replica at once, tenants kept apart."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import POSTGRES_DSN, postgres_schema
from veil_server.keys import KeyStore, KeyStoreError, check_key_policy, key_id_of
from veil_server.settings import KeyLimits, KeyPolicy
from veil_server.state import StateDB

from veil.detect.policy import Policy


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(url, schema) of an empty state database; two StateDBs on it are two replicas."""
    if request.param == "sqlite":
        yield str(tmp_path / "server.db"), "veil_server"
        return
    schemas = postgres_schema()
    schema = next(schemas)
    yield POSTGRES_DSN, schema
    next(schemas, None)


@pytest.fixture
def replicas(location: tuple[str, str]) -> Iterator[tuple[KeyStore, KeyStore]]:
    url, schema = location
    first, second = StateDB(url, schema=schema), StateDB(url, schema=schema)
    yield KeyStore(first), KeyStore(second)
    first.close()
    second.close()


def every_stored_value(store: KeyStore) -> str:
    with store.state.transaction() as tx:
        rows = tx.fetchall("SELECT * FROM keys_api") + tx.fetchall("SELECT * FROM keys_secret")
    return repr(rows)


def test_a_created_key_has_the_documented_form_and_only_its_digest_is_stored(
    replicas: tuple[KeyStore, KeyStore],
) -> None:
    store, _ = replicas
    created = store.create(tenant="acme", scopes=["chat", "embeddings", "chat"], name="support bot",
                           limits=KeyLimits(requests_per_minute=60), created_by="cli")  # fmt: skip
    key = created.key
    key_id, _, secret = key.removeprefix("sk-veil-").partition("_")
    assert key.startswith("sk-veil-") and key_id == created.record.id and key_id_of(key) == key_id
    assert len(secret) == 43  # 32 random bytes, base64url
    assert created.record.scopes == ("chat", "embeddings")
    assert created.record.redacted == f"sk-veil-{key_id}_…{key[-4:]}"
    stored = every_stored_value(store)
    assert secret not in stored and key not in stored
    assert hashlib.sha256(key.encode()).hexdigest() in stored


def test_a_key_is_verified_by_any_replica_and_a_wrong_secret_is_not(replicas: tuple[KeyStore, KeyStore]) -> None:
    first, second = replicas
    key = first.create(tenant="acme", scopes=["chat"]).key
    record = second.verify(key)
    assert record is not None and record.tenant == "acme" and not record.revoked
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert second.verify(tampered) is None
    assert second.verify("sk-veil-0000000000000000_" + "x" * 43) is None  # unknown id
    assert second.verify("sk-veil-test") is None  # not the stored form


def test_revocation_on_one_replica_is_seen_by_the_other_at_once(replicas: tuple[KeyStore, KeyStore]) -> None:
    first, second = replicas
    key = first.create(tenant="acme", scopes=["chat"]).key
    key_id = key_id_of(key)
    assert key_id is not None
    assert second.verify(key) is not None
    revoked = first.revoke(key_id)
    assert revoked is not None and revoked.revoked_at is not None
    seen = second.verify(key)
    assert seen is not None and seen.revoked  # refused by the authenticator from this request on
    again = second.revoke(key_id)
    assert again is not None and again.revoked_at == revoked.revoked_at  # idempotent


def test_a_tenant_never_sees_or_revokes_another_tenants_keys(replicas: tuple[KeyStore, KeyStore]) -> None:
    store, _ = replicas
    acme = store.create(tenant="acme", scopes=["chat"]).record
    globex = store.create(tenant="globex", scopes=["admin"]).record
    assert [r.id for r in store.list(tenant="acme")] == [acme.id]
    assert {r.id for r in store.list()} == {acme.id, globex.id}
    assert store.get(globex.id, tenant="acme") is None
    assert store.revoke(globex.id, tenant="acme") is None
    still = store.get(globex.id)
    assert still is not None and not still.revoked


def test_bad_input_is_refused_with_the_field_named(replicas: tuple[KeyStore, KeyStore]) -> None:
    store, _ = replicas
    for kwargs, param in (
        ({"tenant": "acme", "scopes": []}, "scopes"),
        ({"tenant": "acme", "scopes": ["chat", "everything"]}, "scopes"),
        ({"tenant": "", "scopes": ["chat"]}, "tenant"),
        ({"tenant": "a b", "scopes": ["chat"]}, "tenant"),
        ({"tenant": "acme", "scopes": ["chat"], "name": "x\n"}, "name"),
    ):
        with pytest.raises(KeyStoreError) as caught:
            store.create(**kwargs)  # type: ignore[arg-type]
        assert caught.value.param == param
    assert store.list() == []
    assert store.get("not-an-id") is None and store.revoke("../../etc") is None


def test_policy_and_limits_round_trip(replicas: tuple[KeyStore, KeyStore]) -> None:
    first, second = replicas
    policy = KeyPolicy(anonymize=False, mode="permissive", allow_opt_out=False, entities=["EMAIL"])
    limits = KeyLimits(requests_per_minute=5, requests_per_day=100, monthly_budget=12.5)
    key = first.create(tenant="acme", scopes=["chat"], policy=policy, limits=limits).key
    record = second.verify(key)
    assert record is not None and record.policy == policy and record.limits == limits
    principal = record.principal()
    assert principal.key_id == record.id and principal.policy == policy and principal.limits == limits


def test_the_token_secret_is_created_once_and_shared_by_replicas(replicas: tuple[KeyStore, KeyStore]) -> None:
    first, second = replicas
    secrets: list[bytes] = []

    def fetch(store: KeyStore) -> None:
        secrets.append(store.signing_secret())

    threads = [threading.Thread(target=fetch, args=(store,)) for store in (first, second, first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(secrets)) == 1 and len(secrets[0]) == 32


def test_has_any_stays_true_once_every_key_is_revoked(replicas: tuple[KeyStore, KeyStore]) -> None:
    store, _ = replicas
    assert not store.has_any()
    key_id = key_id_of(store.create(tenant="acme", scopes=["chat"]).key)
    assert key_id is not None and store.revoke(key_id) is not None
    assert store.has_any()


def test_a_key_policy_can_narrow_the_servers_entities_never_widen_them() -> None:
    server = Policy(entities=frozenset({"EMAIL", "PHONE"}))
    assert check_key_policy(KeyPolicy(entities=["email"]), server).entities == ["EMAIL"]
    with pytest.raises(KeyStoreError, match="does not report CA_SIN"):
        check_key_policy(KeyPolicy(entities=["CA_SIN"]), server)
    with pytest.raises(KeyStoreError, match="unknown entity"):
        check_key_policy(KeyPolicy(entities=["NOT_AN_ENTITY"]), Policy())
    with pytest.raises(KeyStoreError, match="at least one"):
        check_key_policy(KeyPolicy(entities=[]), Policy())
    assert check_key_policy(KeyPolicy(), server).entities is None


def test_a_state_database_in_memory_is_one_database_for_every_thread() -> None:
    state = StateDB.for_url("memory")
    store = KeyStore(state)
    key = store.create(tenant="acme", scopes=["chat"]).key
    found: list[bool] = []
    thread = threading.Thread(target=lambda: found.append(store.verify(key) is not None))
    thread.start()
    thread.join()
    assert found == [True]
    state.close()


def test_the_state_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    state = StateDB(str(tmp_path / "sub" / "server.db"))
    KeyStore(state)
    assert (tmp_path / "sub" / "server.db").stat().st_mode & 0o077 == 0
    state.close()
