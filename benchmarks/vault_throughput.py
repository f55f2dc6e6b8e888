#!/usr/bin/env python3
"""Vault throughput: new mappings (`get_or_create` of values new to the scope) and lookups per
second, for each backend, with 1 and 8 writer threads sharing one vault handle.

Run: uv run python benchmarks/vault_throughput.py [--values 4000]

The vault rows use a dummy sealer (48 fixed bytes, a fixed blind index per value), so they
measure the vault alone. One more row per backend goes through the real key ring: a
LocalKeyFileProvider in a temporary directory and a KeyRing keeping its data keys in the vault
under test (`vault.keys`); each put computes an HMAC blind index and seals with AES-256-GCM, each
lookup also decrypts. Backends: memory, SQLite (WAL, durability "process"), PostgreSQL
(127.0.0.1:5432, database test; override with VEIL_BENCH_POSTGRES) and Redis (127.0.0.1:6379;
VEIL_BENCH_REDIS). A server that is down, or a missing extra, skips its backend, saying so.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from veil.crypto import KeyRing, LocalKeyFileProvider, Sealed
from veil.errors import ConfigError, VaultUnavailable
from veil.session import value_aad
from veil.tokens import format_token
from veil.vault import MemoryVault, NewMapping, SQLiteVault, Vault

POSTGRES_DSN = os.environ.get("VEIL_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("VEIL_BENCH_REDIS", "redis://127.0.0.1:6379/0")
TENANT = "bench"
SEALED = Sealed("dk_bench", bytes(48))

Put = Callable[[Vault, str, int, int], str]
"""(vault, scope, thread, n) → the token of the thread's n-th new value."""
Get = Callable[[Vault, str, str], object]
"""(vault, scope, token) → the value (or record) of a token."""


def run_threads(threads: int, work: Callable[[int], None]) -> float:
    """Seconds for `threads` threads to run `work(index)`, all released at once."""
    start = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        start.wait()
        try:
            work(index)
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    workers = [threading.Thread(target=body, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - began


def measure(vault: Vault, scope: str, values: int, threads: int, *, put: Put, get: Get) -> tuple[float, float]:
    """(new mappings per second, lookups per second) with `threads` threads writing `values` values."""
    per_thread = values // threads
    tokens: list[list[str]] = [[] for _ in range(threads)]

    def write(index: int) -> None:
        tokens[index] = [put(vault, scope, index, n) for n in range(per_thread)]

    def read(index: int) -> None:
        for token in tokens[index]:
            if get(vault, scope, token) is None:
                raise AssertionError(f"token {token} was not found")

    done = per_thread * threads
    return done / run_threads(threads, write), done / run_threads(threads, read)


def dummy_put(vault: Vault, scope: str, index: int, n: int) -> str:
    mapping = NewMapping("EMAIL", f"bi-{index}-{n}", lambda token: SEALED)
    return vault.get_or_create(TENANT, scope, mapping, format_token)[0]


def dummy_get(vault: Vault, scope: str, token: str) -> object:
    return vault.lookup(TENANT, scope, token)


def keyring_operations(keyring: KeyRing) -> tuple[Put, Get]:
    def put(vault: Vault, scope: str, index: int, n: int) -> str:
        value = f"client{index}-{n}@exemple.ca"
        raw = value.encode()

        def seal(token: str) -> Sealed:
            return keyring.encrypt(TENANT, raw, value_aad(TENANT, scope, token))

        mapping = NewMapping("EMAIL", keyring.blind_index(TENANT, "EMAIL", value), seal)
        return vault.get_or_create(TENANT, scope, mapping, format_token)[0]

    def get(vault: Vault, scope: str, token: str) -> object:
        record = vault.lookup(TENANT, scope, token)
        if record is None:
            return None
        return keyring.decrypt(TENANT, record.sealed, value_aad(TENANT, scope, token))

    return put, get


@contextmanager
def memory_vault(home: Path) -> Iterator[Vault]:
    yield MemoryVault()


@contextmanager
def sqlite_vault(home: Path) -> Iterator[Vault]:
    vault = SQLiteVault(home / "vault.db")
    yield vault
    vault.close()


@contextmanager
def postgres_vault(home: Path) -> Iterator[Vault]:
    from veil.vault.postgres import PostgresVault

    schema = f"veil_bench_{uuid.uuid4().hex[:8]}"
    vault = PostgresVault(POSTGRES_DSN, schema=schema, pool_size=8)
    try:
        yield vault
    finally:
        vault.close()
        import psycopg

        with psycopg.connect(POSTGRES_DSN, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


@contextmanager
def redis_vault(home: Path) -> Iterator[Vault]:
    from veil.vault.redis import RedisVault

    prefix = f"veilbench{uuid.uuid4().hex[:8]}"
    vault = RedisVault(REDIS_URL, prefix=prefix)
    try:
        yield vault
    finally:
        vault.close()
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        doomed = list(client.scan_iter(f"{prefix}:*", count=1000))
        for start in range(0, len(doomed), 1000):
            client.delete(*doomed[start : start + 1000])
        client.close()


BACKENDS = {"memory": memory_vault, "sqlite": sqlite_vault, "postgres": postgres_vault, "redis": redis_vault}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--values", type=int, default=4000, help="new values per row (default 4000)")
    parser.add_argument("--backends", nargs="*", choices=list(BACKENDS), default=list(BACKENDS))
    args = parser.parse_args()
    rows: list[tuple[str, str, int, float, float]] = []
    skipped: list[str] = []
    for name in args.backends:
        with tempfile.TemporaryDirectory() as directory, ExitStack() as stack:
            home = Path(directory)
            try:
                vault = stack.enter_context(BACKENDS[name](home))
            except (VaultUnavailable, ConfigError) as exc:
                skipped.append(f"{name} skipped: {exc}")
                continue
            for threads in (1, 8):
                puts, gets = measure(vault, f"dummy-{threads}", args.values, threads, put=dummy_put, get=dummy_get)
                rows.append((name, "dummy (48 bytes)", threads, puts, gets))
            keyring = KeyRing(LocalKeyFileProvider(home / "keys.json"), vault.keys)
            keyring.prepare(TENANT)
            put, get = keyring_operations(keyring)
            puts, gets = measure(vault, "keyring", args.values, 1, put=put, get=get)
            rows.append((name, "KeyRing (HMAC + AES-GCM)", 1, puts, gets))

    print(f"## Vault throughput ({args.values:,} new values per row)\n")
    print("| backend | sealing | writer threads | new mappings/s | lookups/s |")
    print("|---|---|---:|---:|---:|")
    for name, sealing, threads, puts, gets in rows:
        print(f"| {name} | {sealing} | {threads} | {puts:,.0f} | {gets:,.0f} |")
    for line in skipped:
        print(f"\n{line}")


if __name__ == "__main__":
    main()
