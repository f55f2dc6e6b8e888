"""A real gateway (uvicorn on loopback) in front of a real recording upstream (uvicorn on loopback).

Keys: `sk-veil-test` (default scopes), `sk-veil-mapping` (also `mapping:read`), `sk-veil-scan`
(scan only), `sk-veil-forced` (may not turn anonymization off). Models: `echo` (the built-in echo
provider, in process), `gpt-test` / `embed-test` and the failure models on the recording upstream,
`down-model` on a port nobody listens on.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from server_live import RecordingUpstream, closed_port, serve
from veil_server import Settings, create_app

from veil.detect.policy import Policy

# The gateway's state database defaults to $VEIL_HOME/server.db: never the working directory in tests.
os.environ.setdefault("VEIL_HOME", tempfile.mkdtemp(prefix="veil-server-tests-"))

CANARIES = {
    "email": "marie.tremblay@exemple.qc.ca",
    "phone": "+1 514 872 3456",
    "sin": "130 692 544",
    "card": "4111 1111 1111 1111",
}
CANARY_TEXT = (
    f"Bonjour, je suis Marie. Écrivez-moi à {CANARIES['email']} ou appelez le {CANARIES['phone']}. "
    f"Mon NAS est {CANARIES['sin']} et ma carte {CANARIES['card']}."
)

KEYS = {
    "sk-veil-test": {"scopes": ["chat", "embeddings", "anonymize", "scan", "models"]},
    "sk-veil-mapping": {"scopes": ["chat", "embeddings", "anonymize", "scan", "models", "mapping:read"]},
    "sk-veil-scan": {"scopes": ["scan"]},
    "sk-veil-forced": {"scopes": ["chat"], "policy": {"allow_opt_out": False}},
    "sk-veil-other-tenant": {"tenant": "other", "scopes": ["chat", "anonymize", "mapping:read"]},
}
FAILURE_MODELS = ("fail-429", "fail-500", "not-json", "slow", "cut", "break", "stall", "mangle")


def sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def gateway_settings(upstream_url: str, **changes: Any) -> Settings:
    models: dict[str, Any] = {
        "echo": {"provider": "echo", "context_length": 32768},
        "echo-embedding": {"provider": "echo", "category": "embedding"},
        "gpt-test": {"provider": "recording", "upstream": "echo", "context_length": 128000},
        "embed-test": {"provider": "recording", "upstream": "echo-embedding", "category": "embedding"},
        "down-model": {"provider": "down"},
        **{name: {"provider": "recording"} for name in FAILURE_MODELS},
    }
    data: dict[str, Any] = {
        "server": {
            "keys": [{"key_sha256": sha256(key), "name": key, **spec} for key, spec in KEYS.items()],
            "max_body_bytes": 64 * 1024,
        },
        "vault": {"url": "memory"},
        # Rules only: the server's tests are about the gateway, not about NER (tested in tests/core).
        "policy": {"ner": "off"} if "ner" in Policy.__dataclass_fields__ else {},
        "providers": {
            "recording": {"base_url": f"{upstream_url}/v1", "timeout": 1.0, "location": "loopback"},
            "down": {"base_url": f"http://127.0.0.1:{closed_port()}/v1", "retries": 0, "connect_timeout": 1.0},
        },
        "models": models,
    }
    for section, values in changes.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **values}
        else:
            data[section] = values
    return Settings(**data)


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
