"""The gateway keeps the contract of its own /openapi.json: for every request schemathesis
generates from it (valid and invalid bodies, parameters and headers, as four callers), the
answer is never a 5xx, its status is documented, its content type is documented, its body
matches the documented schema, and a method a path lacks is a 405 with `Allow`.

The short run is in every test run (deterministic, a few examples per operation); the long run
(`--runslow`) adds the coverage phase for every caller, the stateful phase and many more
examples. Figures: docs/reliability.md, "API contract". The harness: api_contract.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from api_contract import IDENTITIES, contract_app, run_contract
from fastapi.testclient import TestClient

# The operations each run must reach past authentication (a 2xx), and stream from.
ANSWERED_BY_ADMIN = {
    "POST /v1/chat/completions",
    "POST /v1/completions",
    "POST /v1/embeddings",
    "POST /v1/anonymize",
    "PUT /v1/anonymize",
    "POST /v1/anonymization/scan",
    "GET /v1/models",
    "GET /v1/usage",
    "GET /v1/admin/keys",
    "POST /v1/admin/keys",
    "GET /v1/admin/webhooks",
    "POST /v1/approvals",
}


def operations_in_the_document(tmp_path: Path) -> set[str]:
    with contract_app(tmp_path) as app, TestClient(app) as client:
        spec = client.get("/openapi.json").json()
    return {f"{method.upper()} {path}" for path, methods in spec["paths"].items() for method in methods}


def test_the_short_contract_run_finds_nothing(tmp_path: Path) -> None:
    every_operation = operations_in_the_document(tmp_path)
    with contract_app(tmp_path) as app:
        runs = [
            run_contract(app, "admin", max_examples=6, coverage="positive", stateful=False),
            *(run_contract(app, who, max_examples=2, coverage=None, stateful=False) for who in IDENTITIES if
              who != "admin"),
        ]  # fmt: skip
    report = "\n\n".join(run.report() for run in runs)
    print("\n".join(run.summary() for run in runs))
    assert all(not run.findings and not run.errors for run in runs), report
    for run in runs:
        assert run.operations == every_operation, report
    admin = runs[0]
    answered = {operation for operation, statuses in admin.statuses.items() if any(200 <= s < 300 for s in statuses)}
    assert answered >= ANSWERED_BY_ADMIN, sorted(ANSWERED_BY_ADMIN - answered)
    assert admin.event_streams > 0, "no streamed answer was checked"


@pytest.mark.slow
@pytest.mark.parametrize("identity", list(IDENTITIES))
def test_the_long_contract_run_finds_nothing(identity: str, tmp_path: Path) -> None:
    with contract_app(tmp_path) as app:
        run = run_contract(app, identity, max_examples=300, coverage="all", stateful=True)
    print(run.summary())
    print(json.dumps({operation: dict(statuses) for operation, statuses in sorted(run.statuses.items())}))
    assert not run.findings and not run.errors, run.report()
