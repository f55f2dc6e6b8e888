"""The guarantees every vault backend gives (see veil.vault.base)."""

from __future__ import annotations

import threading
import time

import pytest

from veil.crypto.envelope import Sealed
from veil.vault import NewMapping, Vault
from veil.vault.base import get_or_create_many


def token_of(entity: str, number: int) -> str:
    return f"{{{{{entity}_{number}}}}}"


def mapping(index: str, entity: str = "EMAIL", **kwargs: object) -> NewMapping:
    return NewMapping(entity, index, lambda token: Sealed("dk_test", f"sealed:{token}".encode()), **kwargs)  # type: ignore[arg-type]


def test_a_value_keeps_its_token_in_a_scope(vault: Vault) -> None:
    first = vault.get_or_create("t", "s", mapping("bi-1"), token_of)
    again = vault.get_or_create("t", "s", mapping("bi-1"), token_of)
    assert first == ("{{EMAIL_1}}", True)
    assert again == ("{{EMAIL_1}}", False)


def test_numbers_count_per_entity_and_never_collide(vault: Vault) -> None:
    tokens = [
        vault.get_or_create("t", "s", mapping(f"bi-{i}", entity), token_of)[0]
        for i, entity in enumerate(["EMAIL", "PHONE", "EMAIL", "EMAIL", "PHONE"])
    ]
    assert tokens == ["{{EMAIL_1}}", "{{PHONE_1}}", "{{EMAIL_2}}", "{{EMAIL_3}}", "{{PHONE_2}}"]


def test_the_sealed_value_is_bound_to_its_token(vault: Vault) -> None:
    token, _ = vault.get_or_create("t", "s", mapping("bi-1"), token_of)
    record = vault.lookup("t", "s", token)
    assert record is not None
    assert record.sealed == Sealed("dk_test", f"sealed:{token}".encode())
    assert record.blind_index == "bi-1"
    assert record.entity == "EMAIL"


def test_scopes_and_tenants_are_isolated(vault: Vault) -> None:
    token, _ = vault.get_or_create("t1", "s1", mapping("bi-1"), token_of)
    assert vault.lookup("t1", "s2", token) is None
    assert vault.lookup("t2", "s1", token) is None
    assert vault.find("t2", "s1", "bi-1") is None
    # the same value in another tenant gets its own numbering
    assert vault.get_or_create("t2", "s1", mapping("bi-1"), token_of) == ("{{EMAIL_1}}", True)
    assert vault.lookup("t1", "s1", token) is not None


def test_names_with_separators_cannot_reach_into_another_scope(vault: Vault) -> None:
    # A backend that joins names into keys must not let ("a:b", "c") alias ("a", "b:c").
    token, _ = vault.get_or_create("a:b", "c", mapping("bi-1"), token_of)
    assert vault.lookup("a", "b:c", token) is None
    assert vault.find("a", "b:c", "bi-1") is None
    assert vault.get_or_create("a", "b:c", mapping("bi-1"), token_of) == ("{{EMAIL_1}}", True)
    assert vault.erase_scope("a", "b:c") == 1
    assert vault.find("a:b", "c", "bi-1") == token


def test_records_come_oldest_first_even_within_one_batch(vault: Vault) -> None:
    entities = ["EMAIL", "PHONE", "EMAIL"] * 4  # twelve values: "{{EMAIL_10}}" sorts before "{{EMAIL_2}}"
    batch = [mapping(f"bi-{i}", entity) for i, entity in enumerate(entities)]
    tokens = [token for token, _ in get_or_create_many(vault, "t", "s", batch, token_of)]
    tokens.append(vault.get_or_create("t", "s", mapping("later"), token_of)[0])
    assert [record.token for record in vault.records("t", "s")] == tokens


def test_a_seal_that_fails_leaves_no_mapping_behind(vault: Vault) -> None:
    # What a writer that dies between allocating a number and storing the record leaves.
    def failing_seal(token: str) -> Sealed:
        raise RuntimeError("the writer died while sealing")

    with pytest.raises(RuntimeError):
        vault.get_or_create("t", "s", NewMapping("EMAIL", "bi-1", failing_seal), token_of)
    assert vault.find("t", "s", "bi-1") is None
    assert vault.records("t", "s") == []
    token, created = vault.get_or_create("t", "s", mapping("bi-1"), token_of)
    assert created
    record = vault.lookup("t", "s", token)
    assert record is not None and record.sealed.ciphertext == f"sealed:{token}".encode()


def test_expired_mappings_are_gone_and_the_value_gets_a_fresh_token(vault: Vault) -> None:
    past = time.time() - 1
    token, _ = vault.get_or_create("t", "s", mapping("bi-1", expires=past), token_of)
    assert vault.lookup("t", "s", token) is None
    assert vault.find("t", "s", "bi-1") is None
    fresh, created = vault.get_or_create("t", "s", mapping("bi-1"), token_of)
    assert created
    assert fresh == "{{EMAIL_2}}"  # the expired number is never reused


def test_purge_expired_deletes_only_expired_rows(vault: Vault) -> None:
    vault.get_or_create("t", "s", mapping("old", expires=time.time() - 1), token_of)
    vault.get_or_create("t", "s", mapping("new", expires=time.time() + 3600), token_of)
    vault.get_or_create("t", "s", mapping("forever"), token_of)
    assert vault.purge_expired() == 1
    assert [r.blind_index for r in vault.records("t", "s")] == ["new", "forever"]


def test_erasing_a_scope_keeps_its_numbers_retired(vault: Vault) -> None:
    vault.get_or_create("t", "s", mapping("a"), token_of)
    vault.get_or_create("t", "other", mapping("a"), token_of)
    assert vault.erase_scope("t", "s") == 1
    assert vault.records("t", "s") == []
    assert len(vault.records("t", "other")) == 1
    # an old "{{EMAIL_1}}" in some text must never restore to a new value
    assert vault.get_or_create("t", "s", mapping("b"), token_of) == ("{{EMAIL_2}}", True)


def test_erasing_a_subject_removes_their_values_in_every_scope(vault: Vault) -> None:
    vault.get_or_create("t", "s1", mapping("a", subject="subj-1"), token_of)
    vault.get_or_create("t", "s2", mapping("b", subject="subj-1"), token_of)
    vault.get_or_create("t", "s1", mapping("c", subject="subj-2"), token_of)
    vault.get_or_create("t2", "s1", mapping("d", subject="subj-1"), token_of)
    assert vault.erase_subject("t", "subj-1") == 2
    assert vault.find("t", "s1", "a") is None and vault.find("t", "s2", "b") is None
    assert [r.blind_index for r in vault.records("t", "s1")] == ["c"]
    assert vault.records("t", "s2") == []
    assert len(vault.records("t2", "s1")) == 1  # another tenant's subject is untouched


def test_concurrent_writers_never_give_a_value_two_tokens(vault_factory) -> None:  # type: ignore[no-untyped-def]
    results: list[tuple[str, str]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        vault = vault_factory()
        try:
            for i in range(40):
                value = f"bi-{(i * 7 + seed) % 25}"
                token, _ = vault.get_or_create("t", "s", mapping(value), token_of)
                with lock:
                    results.append((value, token))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    by_value: dict[str, set[str]] = {}
    by_token: dict[str, set[str]] = {}
    for value, token in results:
        by_value.setdefault(value, set()).add(token)
        by_token.setdefault(token, set()).add(value)
    assert all(len(tokens) == 1 for tokens in by_value.values())
    assert all(len(values) == 1 for values in by_token.values())
    assert len(by_value) == 25
    numbers = sorted(int(t.strip("{}").split("_")[1]) for t in by_token)
    # Distinct numbers from 1 up; a backend may leave a gap where two writers raced for one
    # value (Redis burns the loser's number), never reuse one.
    assert len(set(numbers)) == 25
    assert numbers[0] >= 1


def test_a_second_handle_on_the_same_store_sees_committed_mappings(vault_factory) -> None:  # type: ignore[no-untyped-def]
    writer, reader = vault_factory(), vault_factory()
    token, _ = writer.get_or_create("t", "s", mapping("bi-1"), token_of)
    assert reader.find("t", "s", "bi-1") == token
    assert reader.lookup("t", "s", token) is not None


def test_data_keys_have_exactly_one_active_key_per_tenant_and_purpose(vault: Vault) -> None:
    from veil.crypto.keyring import DataKey
    from veil.crypto.keys import KeyRef

    first = DataKey("dk_1", "t", "index", b"w1", KeyRef("local", 1), time.time())
    second = DataKey("dk_2", "t", "index", b"w2", KeyRef("local", 1), time.time())
    assert vault.keys.add_data_key(first) == first
    assert vault.keys.add_data_key(second) == first  # the first writer won
    other_tenant = DataKey("dk_3", "t2", "index", b"w3", KeyRef("local", 1), time.time())
    assert vault.keys.add_data_key(other_tenant) == other_tenant
    assert {k.key_id for k in vault.keys.data_keys("t")} == {"dk_1"}


def test_replacing_a_data_key_updates_its_wrapping(vault: Vault) -> None:
    from dataclasses import replace

    from veil.crypto.keyring import DataKey
    from veil.crypto.keys import KeyRef

    key = DataKey("dk_1", "t", "data", b"w1", KeyRef("local", 1), time.time())
    vault.keys.add_data_key(key)
    vault.keys.replace_data_key(replace(key, wrapped=b"w2", kek=KeyRef("local", 2), active=False))
    (stored,) = vault.keys.data_keys("t")
    assert (stored.wrapped, stored.kek, stored.active) == (b"w2", KeyRef("local", 2), False)


def test_a_second_data_key_cannot_be_made_active(vault: Vault) -> None:
    from dataclasses import replace

    from veil.crypto.keyring import DataKey
    from veil.crypto.keys import KeyRef
    from veil.errors import VaultError

    first = DataKey("dk_1", "t", "data", b"w1", KeyRef("local", 1), time.time())
    vault.keys.add_data_key(first)
    vault.keys.replace_data_key(replace(first, active=False))
    second = DataKey("dk_2", "t", "data", b"w2", KeyRef("local", 1), time.time())
    assert vault.keys.add_data_key(second) == second
    with pytest.raises(VaultError, match="already has an active"):
        vault.keys.replace_data_key(replace(first, wrapped=b"w1bis"))
    vault.keys.replace_data_key(replace(second, wrapped=b"w2bis"))  # re-wrapping the active key is fine
    assert {(k.key_id, k.active) for k in vault.keys.data_keys("t")} == {("dk_1", False), ("dk_2", True)}


def test_unknown_tokens_are_none(vault: Vault) -> None:
    vault.get_or_create("t", "s", mapping("bi-1"), token_of)
    assert vault.lookup("t", "s", "") is None
    assert vault.lookup("t", "s", "{{EMAIL_99}}") is None
    assert vault.find("t", "s", "bi-unknown") is None
