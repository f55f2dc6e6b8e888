"""Real services for tests (PostgreSQL, Redis): skip on a laptop without them, fail under CI."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def require_service(name: str, reason: str) -> None:
    """Skip on a developer's machine; fail under CI, where the service must be there."""
    if os.environ.get("CI"):
        pytest.fail(f"{name} is required under CI: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


POSTGRES_DSN = os.environ.get("VEIL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards (skip or fail per require_service)."""
    try:
        import psycopg
    except ImportError:
        require_service("psycopg", "install the dev group (uv sync)")
    schema = f"veil_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES_DSN, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        require_service("PostgreSQL", f"{POSTGRES_DSN}: {type(exc).__name__}")
    yield schema
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database (vault and state of a gateway use fixed schema names), dropped after."""
    try:
        import psycopg
    except ImportError:
        require_service("psycopg", "install the dev group (uv sync)")

    name = f"veil_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        require_service("PostgreSQL", f"{POSTGRES_DSN}: {type(exc).__name__}")
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield POSTGRES_DSN.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


REDIS_URL = os.environ.get("VEIL_TEST_REDIS", "redis://127.0.0.1:6379/0")


def redis_prefix() -> Iterator[str]:
    """A fresh key prefix for one test, its keys deleted afterwards (skip or fail per require_service)."""
    try:
        import redis
    except ImportError:
        require_service("redis-py", "install the dev group (uv sync)")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        require_service("Redis", f"{REDIS_URL}: {type(exc).__name__}")
    prefix = f"veiltest{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()
