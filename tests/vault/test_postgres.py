"""What the PostgreSQL vault adds to the contract: whatever the server's default isolation, a
writer that skipped the scope lock, a restarted server, concurrent first starts."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from services import POSTGRES_DSN, postgres_schema
from test_contract import mapping, token_of

from veil.crypto.envelope import Sealed
from veil.errors import IntegrityError, VaultUnavailable
from veil.vault import NewMapping


@pytest.fixture
def schema() -> Iterator[str]:
    names = postgres_schema()
    yield next(names)
    next(names, None)


def with_options(**settings: str) -> str:
    """The test DSN with server settings for its sessions (libpq `options`)."""
    options = " ".join(f"-c {name}={value}" for name, value in settings.items())
    separator = "&" if "?" in POSTGRES_DSN else "?"
    return f"{POSTGRES_DSN}{separator}options={quote(options)}"


def open_vault(dsn: str, schema: str, **options: Any) -> Any:
    from veil.vault.postgres import PostgresVault

    return PostgresVault(dsn, schema=schema, **options)


@pytest.mark.parametrize("isolation", ["repeatable\\ read", "serializable"])
def test_concurrent_writers_are_correct_whatever_the_default_isolation(schema: str, isolation: str) -> None:
    vault = open_vault(with_options(default_transaction_isolation=isolation), schema, pool_size=8)
    results: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def writer(seed: int) -> None:
        start.wait()
        try:
            for call in range(30):
                value = f"bi-{(call * 7 + seed) % 20}"
                results.append((value, vault.get_or_create("t", "s", mapping(value), token_of)[0]))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    vault.close()
    assert errors == []
    assert len(set(results)) == 20 == len({value for value, _ in results}) == len({token for _, token in results})


def test_a_unique_violation_is_rolled_back_and_the_winners_token_returned(schema: str) -> None:
    import psycopg

    vault = open_vault(POSTGRES_DSN, schema)
    vault.get_or_create("t", "s", mapping("bi-0"), token_of)

    def seal_while_an_outsider_commits(token: str) -> Sealed:
        # A writer that does not take the scope lock stores the same value first.
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as outsider:
            outsider.execute(
                f"INSERT INTO {schema}.mappings (tenant, scope, token, entity, blind_index, key_id, ciphertext, "
                "created) VALUES ('t', 's', '{{EMAIL_90}}', 'EMAIL', 'bi-1', 'dk_test', 'x', 0) ON CONFLICT DO NOTHING"
            )
        return Sealed("dk_test", f"sealed:{token}".encode())

    assert vault.get_or_create("t", "s", NewMapping("EMAIL", "bi-1", seal_while_an_outsider_commits), token_of) == (
        "{{EMAIL_90}}",
        False,
    )
    # The losing attempt's number was rolled back with it: the next value takes it.
    assert vault.get_or_create("t", "s", mapping("bi-2"), token_of) == ("{{EMAIL_2}}", True)
    vault.close()


def test_a_server_restart_costs_at_most_one_failed_call(schema: str) -> None:
    import psycopg

    name = f"veil_test_{uuid.uuid4().hex[:8]}"
    dsn = f"{POSTGRES_DSN}{'&' if '?' in POSTGRES_DSN else '?'}application_name={name}"
    vault = open_vault(dsn, schema, pool_size=3)
    token, _ = vault.get_or_create("t", "s", mapping("bi-1"), token_of)
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s", (name,)
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    messages = []
    for _ in range(3):
        try:
            assert vault.find("t", "s", "bi-1") == token
        except VaultUnavailable as error:
            messages.append(str(error))
    assert len(messages) <= 1
    assert not any("bi-1" in message or "127.0.0.1" in message for message in messages)
    assert vault.find("t", "s", "bi-1") == token
    vault.close()


def test_a_connection_idle_past_the_check_is_replaced_before_use(schema: str) -> None:
    import psycopg

    name = f"veil_test_{uuid.uuid4().hex[:8]}"
    dsn = f"{POSTGRES_DSN}{'&' if '?' in POSTGRES_DSN else '?'}application_name={name}"
    vault = open_vault(dsn, schema, pool_size=2, idle_check=0)
    token, _ = vault.get_or_create("t", "s", mapping("bi-1"), token_of)
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (name,))
    assert vault.find("t", "s", "bi-1") == token  # checked, found broken, replaced: no error
    vault.close()


def test_concurrent_first_starts_create_the_schema_once(schema: str) -> None:
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def first_start() -> None:
        start.wait()
        try:
            open_vault(POSTGRES_DSN, schema, pool_size=1).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    vault = open_vault(POSTGRES_DSN, schema)
    assert vault.get_or_create("t", "s", mapping("bi-1"), token_of) == ("{{EMAIL_1}}", True)
    vault.close()


def test_counters_behind_their_mappings_are_an_integrity_error_without_values(schema: str) -> None:
    import psycopg

    vault = open_vault(POSTGRES_DSN, schema)
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as outsider:  # a row the counters never allocated
        outsider.execute(
            f"INSERT INTO {schema}.mappings (tenant, scope, token, entity, blind_index, key_id, ciphertext, created) "
            "VALUES ('t', 's', '{{EMAIL_1}}', 'EMAIL', 'bi-restored', 'dk_test', 'x', 0)"
        )
    with pytest.raises(IntegrityError, match="counters are behind") as error:
        vault.get_or_create("t", "s", mapping("bi-new"), token_of)
    assert "bi-" not in str(error.value) and error.value.__cause__ is None
    vault.close()
