"""What authentication costs per request: a configured key, a stored key, an access token.

Times the gateway's authenticator (`AccessAuthenticator.authenticate`) on a request carrying
each kind of credential, with the key store on a SQLite file (the default, reads inline) and on
PostgreSQL (reads in a worker thread), 1,000 keys in the store. No cache: every stored key and
every token is checked against the database (revocation holds from the next request on).

    uv run python benchmarks/auth_overhead.py [--iterations 3000] [--postgres postgresql://…]

Read the numbers as an upper bound: the machine is shared (see server_overhead.py).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from starlette.requests import Request
from veil_server import Settings, create_app
from veil_server.access import AccessAuthenticator
from veil_server.gateway import Gateway


def request_with(credential: str) -> Request:
    headers = [(b"authorization", f"Bearer {credential}".encode())]
    return Request({"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers})


async def timings(authenticator: AccessAuthenticator, credential: str, iterations: int) -> list[float]:
    request = request_with(credential)
    for _ in range(50):  # warm-up: connections, the token secret
        await authenticator.authenticate(request)
    out = []
    for _ in range(iterations):
        started = time.perf_counter()
        await authenticator.authenticate(request)
        out.append((time.perf_counter() - started) * 1e6)
    return out


def gateway_for(state_url: str, *, schema: str | None = None, cache_seconds: float = 0.0) -> Gateway:
    keys = [{"key": f"sk-config-{n}", "name": f"config-{n}", "scopes": ["chat"]} for n in range(10)]
    server = {"keys": keys, "state_url": state_url, "key_cache_seconds": cache_seconds}
    settings = Settings(server=server, vault={"url": "memory"}, policy={"ner": "off"})
    if schema is not None:
        from veil_server import state

        original = state.StateDB.for_url
        state.StateDB.for_url = classmethod(lambda cls, url: cls(url or "", schema=schema))  # type: ignore[method-assign,assignment,arg-type]
        try:
            gateway: Gateway = create_app(settings).state.gateway
        finally:
            state.StateDB.for_url = original  # type: ignore[method-assign]
        return gateway
    plain: Gateway = create_app(settings).state.gateway
    return plain


def rows_for(label: str, gateway: Gateway, iterations: int) -> list[tuple[str, list[float]]]:
    authenticator = gateway.authenticator
    assert isinstance(authenticator, AccessAuthenticator)
    stored = ""
    for n in range(1000):
        created = gateway.keys.create(tenant=f"t{n % 7}", scopes=["chat", "scan"])
        stored = created.key if n == 500 else stored
    record = gateway.keys.verify(stored)
    assert record is not None
    token = gateway.tokens.issue(record.principal(), "store").access_token

    async def run() -> list[tuple[str, list[float]]]:
        return [
            (f"{label}: configured key (10 keys)", await timings(authenticator, "sk-config-7", iterations)),
            (f"{label}: stored key", await timings(authenticator, stored, iterations)),
            (f"{label}: access token", await timings(authenticator, token, iterations)),
        ]

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--postgres", help="also measure with the key store on this PostgreSQL database")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        sqlite = gateway_for(str(Path(directory) / "server.db"))
        rows += rows_for("SQLite", sqlite, args.iterations)
        sqlite.state.close()
    if args.postgres:
        import psycopg

        schema = f"veil_bench_{uuid.uuid4().hex[:8]}"
        postgres = gateway_for(args.postgres, schema=schema)
        cached = gateway_for(args.postgres, schema=schema, cache_seconds=5)
        try:
            rows += rows_for("PostgreSQL", postgres, args.iterations)
            rows += rows_for("PostgreSQL, key_cache_seconds=5", cached, args.iterations)[1:]
        finally:
            postgres.state.close()
            cached.state.close()
            with psycopg.connect(args.postgres, autocommit=True) as connection:
                connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    print(f"{'credential':<50} {'p50 µs':>8} {'p95 µs':>8} {'p99 µs':>8}")
    for label, values in rows:
        quantiles = statistics.quantiles(values, n=100)
        print(f"{label:<50} {statistics.median(values):8.1f} {quantiles[94]:8.1f} {quantiles[98]:8.1f}")


if __name__ == "__main__":
    main()
