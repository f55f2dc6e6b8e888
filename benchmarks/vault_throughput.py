#!/usr/bin/env python3
"""Vault throughput: new mappings (get_or_create) and lookups per second, per backend, with 1 and
8 concurrent writer threads; and the same through a Session (real AES-GCM sealing, blind index).

Run: uv run python benchmarks/vault_throughput.py [--values 4000]

Backends measured: memory, SQLite (the embedded default, WAL, durability "process") and
PostgreSQL (127.0.0.1:5432, database test) and Redis (127.0.0.1:6379); a server that is down is
skipped, saying so.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from veil.crypto.envelope import Sealed
from veil.session import Veil
from veil.tokens import format_token
from veil.vault import MemoryVault, NewMapping, SQLiteVault, Vault

SEALED = Sealed("dk_bench", bytes(48))


def run_threads(threads: int, work: Callable[[int], None]) -> float:
    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start


def measure(make: Callable[[], Vault], values: int, threads: int) -> tuple[float, float]:
    """(puts per second, lookups per second) with `threads` writers sharing `values` new values."""
    vault = make()
    per_thread = values // threads
    tokens: list[list[str]] = [[] for _ in range(threads)]

    def put(index: int) -> None:
        handle = make()
        for n in range(per_thread):
            mapping = NewMapping("EMAIL", f"bi-{index}-{n}", lambda token: SEALED)
            tokens[index].append(handle.get_or_create("t", "s", mapping, format_token)[0])

    def get(index: int) -> None:
        handle = make()
        for token in tokens[index]:
            handle.lookup("t", "s", token)

    put_seconds = run_threads(threads, put)
    get_seconds = run_threads(threads, get)
    vault.close()
    done = per_thread * threads
    return done / put_seconds, done / get_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--values", type=int, default=4000)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as home:
        for threads in (1, 8):
            shared = MemoryVault()
            puts, gets = measure(lambda shared=shared: shared, args.values, threads)
            rows.append(("memory", threads, puts, gets))
        for threads in (1, 8):
            path = Path(home) / f"bench-{threads}.db"
            puts, gets = measure(lambda path=path: SQLiteVault(path), args.values, threads)
            rows.append(("sqlite", threads, puts, gets))

        try:
            import psycopg

            from veil.vault.postgres import PostgresVault

            dsn = "postgresql://postgres@127.0.0.1:5432/test"
            for threads in (1, 8):
                schema = f"veil_bench_{threads}"
                with psycopg.connect(dsn, autocommit=True) as connection:
                    connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                puts, gets = measure(lambda schema=schema: PostgresVault(dsn, schema=schema, pool_size=2),
                                     args.values, threads)  # fmt: skip
                rows.append(("postgres", threads, puts, gets))
                with psycopg.connect(dsn, autocommit=True) as connection:
                    connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        except Exception as exc:
            print(f"PostgreSQL skipped: {type(exc).__name__}: {exc}")

        try:
            import redis

            from veil.vault.redis import RedisVault

            url = "redis://127.0.0.1:6379/0"
            for threads in (1, 8):
                prefix = f"veilbench{threads}"
                client = redis.Redis.from_url(url)
                for key in client.scan_iter(f"{prefix}:*"):
                    client.delete(key)
                puts, gets = measure(lambda prefix=prefix: RedisVault(url, prefix=prefix), args.values, threads)
                rows.append(("redis", threads, puts, gets))
                for key in client.scan_iter(f"{prefix}:*"):
                    client.delete(key)
        except Exception as exc:  # a benchmark reports and goes on
            print(f"Redis skipped: {type(exc).__name__}: {exc}")

        veil = Veil.open(Path(home) / "session", audit_traffic=False)
        session = veil.session("bench")
        start = time.perf_counter()
        tokens = [session.token_for("EMAIL", f"client{n}@exemple.ca") for n in range(args.values)]
        put_rate = args.values / (time.perf_counter() - start)
        reader = veil.session("bench")  # an empty session cache: every value comes from the vault
        start = time.perf_counter()
        for token in tokens:
            reader.value_of(token)
        get_rate = args.values / (time.perf_counter() - start)
        rows.append(("sqlite + Session (AES-GCM, blind index)", 1, put_rate, get_rate))
        veil.close()

    print(f"## Vault throughput ({args.values} values per row)\n")
    print("| backend | writer threads | new mappings/s | lookups/s |\n|---|---:|---:|---:|")
    for name, threads, puts, gets in rows:
        print(f"| {name} | {threads} | {puts:,.0f} | {gets:,.0f} |")


if __name__ == "__main__":
    main()
