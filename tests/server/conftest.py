"""A real gateway (uvicorn on loopback) in front of a real recording upstream (uvicorn on loopback).

Keys: `sk-veil-test` (default scopes), `sk-veil-mapping` (also `mapping:read`), `sk-veil-scan`
(scan only), `sk-veil-forced` (may not turn anonymization off). Models: `echo` (the built-in echo
provider, in process), `gpt-test` / `embed-test` and the failure models on the recording upstream,
`down-model` on a port nobody listens on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_setup import gateway_settings
from server_live import RecordingUpstream, serve
from services import POSTGRES_DSN, postgres_schema
from veil_server import create_app
from veil_server.state import StateDB


@pytest.fixture(autouse=True)
def _veil_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Apps built with default settings keep their state (server.db, keys) in a temporary VEIL_HOME."""
    monkeypatch.setenv("VEIL_HOME", str(tmp_path_factory.mktemp("veil-home")))


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[tuple[RecordingUpstream, str]]:
    upstream = RecordingUpstream()
    with serve(upstream) as url:
        yield upstream, url
    upstream.release.set()


@pytest.fixture
def upstream(upstream_server: tuple[RecordingUpstream, str]) -> Iterator[RecordingUpstream]:
    recorder, _ = upstream_server
    recorder.clear()
    recorder.release.clear()
    yield recorder
    recorder.release.set()


@pytest.fixture(scope="session")
def gateway_url(upstream_server: tuple[RecordingUpstream, str]) -> Iterator[str]:
    _, upstream_url = upstream_server
    with serve(create_app(gateway_settings(upstream_url))) as url:
        yield url


@pytest.fixture
def base_url(gateway_url: str, upstream: RecordingUpstream) -> str:
    """The gateway's OpenAI base URL (the upstream's record cleared for this test)."""
    return f"{gateway_url}/v1"


@pytest.fixture
def client(base_url: str) -> Any:
    import openai

    with openai.OpenAI(base_url=base_url, api_key="sk-veil-test", max_retries=0, timeout=20) as sdk:
        yield sdk


@pytest.fixture
def mapping_client(base_url: str) -> Any:
    import openai

    with openai.OpenAI(base_url=base_url, api_key="sk-veil-mapping", max_retries=0, timeout=20) as sdk:
        yield sdk


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateDB]:
    """A state database on a SQLite file, then on a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        db = StateDB(str(tmp_path / "server.db"))
        yield db
        db.close()
        return
    schemas = postgres_schema()
    db = StateDB(POSTGRES_DSN, schema=next(schemas))
    yield db
    db.close()
    next(schemas, None)
