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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# Regressions: what the contract runs found, each with the request that broke it.


def documented(spec: dict[str, Any], method: str, path: str, response: Any) -> None:
    """The answer's status and content type are in the document for this operation."""
    responses = spec["paths"][path][method.lower()]["responses"]
    assert str(response.status_code) in responses, (method, path, response.status_code, sorted(responses))
    media_type = response.headers["content-type"].split(";")[0]
    assert media_type in responses[str(response.status_code)]["content"], (method, path, media_type)


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    """One gateway for the regression tests below (none of them changes its state)."""
    home = tmp_path_factory.mktemp("contract")
    with contract_app(home) as app, TestClient(app, headers=IDENTITIES["admin"]) as client:
        yield client, client.get("/openapi.json").json()


@pytest.mark.parametrize("path", ["/v1/models", "/v1/chat/completions", "/v1/admin/keys/0", "/v1/auth/token"])
def test_a_method_a_path_lacks_is_a_405_with_its_allow_header(path: str, admin: Any) -> None:
    """Found: `TRACE /v1/models` answered 405 without `Allow` (RFC 9110 requires it): the error
    handler rebuilt Starlette's 405 and dropped its headers."""
    client, _ = admin
    response = client.request("TRACE", path)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"]


@pytest.mark.parametrize(
    ("method", "path", "template", "body"),
    [
        ("GET", "/v1/admin/keys/0", "/v1/admin/keys/{key_id}", None),
        ("DELETE", "/v1/admin/keys/0", "/v1/admin/keys/{key_id}", None),
        ("GET", "/v1/admin/webhooks/0", "/v1/admin/webhooks/{subscription_id}", None),
        ("DELETE", "/v1/admin/webhooks/0", "/v1/admin/webhooks/{subscription_id}", None),
        ("GET", "/v1/admin/webhooks/0/deliveries?limit=499", "/v1/admin/webhooks/{subscription_id}/deliveries", None),
        ("POST", "/v1/admin/webhooks/0/ping", "/v1/admin/webhooks/{subscription_id}/ping", None),
        ("POST", "/v1/admin/webhooks/0/rotate-secret", "/v1/admin/webhooks/{subscription_id}/rotate-secret",
         {"grace_seconds": 0}),
        ("POST", "/v1/approvals/0/approve", "/v1/approvals/{request_id}/approve", None),
        ("POST", "/v1/anonymization/reverse", "/v1/anonymization/reverse", {"request_id": "0" * 99}),
        ("GET", "/v1/models/0", "/v1/models/{model}", None),
    ],
)  # fmt: skip
def test_an_unknown_id_is_a_documented_404(method: str, path: str, template: str, body: Any, admin: Any) -> None:
    """Found: these answered 404 (an id not in the caller's tenant), which the document did not list."""
    client, spec = admin
    response = client.request(method, path, json=body)
    assert response.status_code == 404
    documented(spec, method, template, response)


def test_every_operation_behind_a_key_documents_401_and_declares_its_security(admin: Any) -> None:
    """Found: `GET /v1/models/{model}` without a key answered 401, undocumented; no operation
    declared how to authenticate."""
    client, spec = admin
    response = client.get("/v1/models/echo", headers={"Authorization": ""})
    assert response.status_code == 401
    documented(spec, "GET", "/v1/models/{model}", response)
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "api_key_header"}
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            assert ("401" in operation["responses"]) == ("security" in operation), (method, path)


def test_metrics_document_the_prometheus_text_format(admin: Any) -> None:
    """Found: /metrics answers text/plain; the document said application/json."""
    client, spec = admin
    documented(spec, "GET", "/metrics", client.get("/metrics"))


def test_a_streamed_answer_is_a_documented_event_stream_of_documented_chunks(admin: Any) -> None:
    """Found once the document named the served models: `stream: true` answers text/event-stream,
    which the document did not list (its 200 was application/json only)."""
    client, spec = admin
    body = {"model": "echo", "messages": [{"role": "tool"}], "n": 1, "stream": True, "tools": [], "veil_scope": ""}
    response = client.post("/v1/chat/completions", json=body, headers={"X-Veil-Scope": "0"})
    assert response.status_code == 200
    documented(spec, "POST", "/v1/chat/completions", response)
    data = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunk_schema = spec["components"]["schemas"]["ChatCompletionChunk"]
    for payload in map(json.loads, data[:-1]):
        assert payload["object"] == chunk_schema["properties"]["object"]["const"]
    assert "veil" in json.loads(data[-2])


def test_model_names_the_served_models_and_any_other_is_a_documented_400(admin: Any) -> None:
    """Without the served models in the document, generated requests never passed `model` (every
    one was a 400 `invalid_model`): the answers of the model routes went unchecked."""
    client, spec = admin
    schemas = spec["components"]["schemas"]
    assert schemas["ChatCompletionRequest"]["properties"]["model"]["enum"] == ["echo"]
    assert schemas["EmbeddingRequest"]["properties"]["model"]["enum"] == ["echo-embedding"]
    response = client.post("/v1/embeddings", json={"model": "echo", "input": "x"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_model"
    documented(spec, "POST", "/v1/embeddings", response)


def test_embeddings_of_a_billion_dimensions_are_refused_not_allocated(admin: Any) -> None:
    """Found by the first long run, which the kernel killed at 22 GB: the echo provider allocated
    the vector a request asked for (`dimensions` has no upper bound in OpenAI's API), so one
    request could take the gateway's memory. The echo provider now refuses more than 4,096."""
    client, spec = admin
    body = {"model": "echo-embedding", "input": "x", "dimensions": 1_000_000_000}
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "dimensions"
    documented(spec, "POST", "/v1/embeddings", response)
