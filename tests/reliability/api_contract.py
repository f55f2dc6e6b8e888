"""The API contract run: schemathesis generates requests from the gateway's own /openapi.json and
checks every answer against that document (see docs/reliability.md, "API contract").

The gateway is built with `create_app` and reached in process through schemathesis' ASGI
transport (no socket, no uvicorn: the same ASGI stack, with the guard middleware and the error
handlers, that uvicorn would run). Its upstream is the built-in `echo` provider, its state a
SQLite file in a temporary directory, its vault in memory. Two keys: `admin` (every scope) and
`user` (the default scopes, so the admin routes answer 403). Each run is made as one caller:

    admin      Authorization: Bearer <admin key>     every operation past authentication
    user       api-key: <user key>                   the Azure-style header; admin routes refused
    invalid    Authorization: Bearer <unknown key>   401 everywhere a key is needed
    anonymous  no credentials (schemathesis may add its own, generated ones)

Webhook deliveries never leave the process: the dispatcher's background task is not started
(subscriptions created by generated requests point anywhere; delivery is tested in
tests/server/test_webhook_delivery.py).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis
from fastapi import FastAPI
from schemathesis.engine import events, from_schema
from schemathesis.python.asgi import shutdown_lifespans
from veil_server import Settings, create_app

ADMIN_KEY = "sk-veil-contract-admin"
USER_KEY = "sk-veil-contract-user"
ALL_SCOPES = ["chat", "embeddings", "anonymize", "scan", "models", "reverse", "mapping:read", "usage", "admin"]

IDENTITIES: dict[str, dict[str, str]] = {
    "admin": {"Authorization": f"Bearer {ADMIN_KEY}"},
    "user": {"api-key": USER_KEY},
    "invalid": {"Authorization": "Bearer sk-veil-not-a-key-of-this-server"},
    "anonymous": {},
}

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "unsupported_method",
)
"""The issue's five, and `unsupported_method` (405 with an `Allow` header for a method a path lacks)."""


def contract_settings(home: Path) -> Settings:
    return Settings(
        server={
            "keys": [
                {"key_sha256": _sha256(ADMIN_KEY), "name": "contract-admin", "scopes": ALL_SCOPES},
                {"key_sha256": _sha256(USER_KEY), "name": "contract-user"},
            ],
            "state_url": str(home / "server.db"),
            "max_body_bytes": 64 * 1024,
        },
        vault={"url": "memory"},
        policy={"ner": "off"},
        models={
            "echo": {"provider": "echo", "context_length": 32768},
            "echo-embedding": {"provider": "echo", "category": "embedding"},
        },
    )


def _sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@contextmanager
def contract_app(home: Path) -> Iterator[FastAPI]:
    """The gateway under test; its lifespan (started by the first request) is stopped on exit."""
    app = create_app(contract_settings(home))
    dispatcher = app.state.gateway.webhooks

    async def no_deliveries() -> None:
        return None

    dispatcher.start = no_deliveries
    try:
        yield app
    finally:
        shutdown_lifespans()


@dataclass
class Finding:
    check: str
    operation: str
    title: str
    message: str
    reproduce: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.operation}: {self.title}\n  {self.message}\n  {self.reproduce}"


@dataclass
class ContractRun:
    identity: str
    operations: set[str] = field(default_factory=set)
    cases: Counter[str] = field(default_factory=Counter)
    """Requests sent, by phase."""
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    """Status codes answered, by operation."""
    event_streams: int = 0
    """Answers served as text/event-stream (and checked as such)."""
    findings: dict[tuple[str, str, str], Finding] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    def summary(self) -> str:
        phases = ", ".join(f"{phase} {count}" for phase, count in sorted(self.cases.items()))
        return (
            f"{self.identity}: {len(self.operations)} operations, {self.total} requests ({phases}), "
            f"{self.event_streams} event streams, {len(self.findings)} failures, {self.seconds:.1f} s"
        )

    def report(self) -> str:
        return "\n\n".join([self.summary(), *map(str, self.findings.values()), *self.errors])


def run_contract(
    app: FastAPI, identity: str, *, max_examples: int, coverage: str | None, stateful: bool, seed: int = 20261203
) -> ContractRun:
    """Every operation of the app's /openapi.json, as `identity`, through every enabled phase.
    `coverage`: None (no coverage phase), "positive" (valid boundary values only) or "all"."""
    config = schemathesis.Config.from_dict(
        {
            "seed": seed,
            "headers": IDENTITIES[identity],
            "generation": {"mode": "all", "max-examples": max_examples, "deterministic": True, "database": "none"},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": coverage is not None, "generation": {"mode": coverage or "all"}},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": stateful},
            },
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    run = ContractRun(identity)
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _record(run, event.phase.value, event.recorder)
        elif isinstance(event, events.NonFatalError):
            run.errors.append(f"error in {event.label}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            run.errors.append(f"fatal: {type(event.exception).__name__}: {event.exception}")
        elif isinstance(event, events.EngineFinished):
            run.seconds = event.running_time
    return run


def _record(run: ContractRun, phase: str, recorder: Any) -> None:
    for case_id, node in recorder.cases.items():
        interaction = recorder.interactions.get(case_id)
        if interaction is None or interaction.response is None:
            continue
        operation = node.value.operation.label
        run.cases[phase] += 1
        run.operations.add(operation)
        response = interaction.response
        run.statuses.setdefault(operation, Counter())[response.status_code] += 1
        content_type = next(iter(response.headers.get("content-type", [""])), "")
        if content_type.startswith("text/event-stream"):
            run.event_streams += 1
    for checks in recorder.checks.values():
        for check in checks:
            if check.failure_info is None:
                continue
            failure = check.failure_info.failure
            key = (check.name, failure.operation, failure.title)
            if key not in run.findings:
                run.findings[key] = Finding(
                    check.name, failure.operation, failure.title, failure.message.strip(),
                    check.failure_info.code_sample.strip(),
                )  # fmt: skip
