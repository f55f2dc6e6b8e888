"""What the server tests share besides fixtures: canary values, test keys, the gateway's settings.

(Tests import it by this name; `from conftest import …` would find another directory's conftest
when pytest collects several test directories in one run.)
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Any

from canaries import CANARIES as ALL_CANARIES
from canaries import CANARY_TEXT
from server_live import closed_port
from veil_server import Settings

from veil.detect.policy import Policy

# The gateway's state database defaults to $VEIL_HOME/server.db: never the working directory in tests.
os.environ.setdefault("VEIL_HOME", tempfile.mkdtemp(prefix="veil-server-tests-"))

CANARIES = {name: ALL_CANARIES[name] for name in ("email", "phone", "sin", "card")}
"""The canaries (tests/canaries.py) that the rules detect without NER, which the server tests turn off."""
__all__ = ["CANARIES", "CANARY_TEXT", "FAILURE_MODELS", "KEYS", "gateway_settings", "sha256"]

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
            "state_url": "memory",  # stored keys, usage …: in this process, nothing left on disk
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
