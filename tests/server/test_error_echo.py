"""Errors never repeat personal data that a client put where a name goes (a model, an id, a path, a
parameter, a scope, an event, an entity type), and the access log names routes, never URLs.

Each case was a leak found by the canary scan (tests/security/test_no_pii_at_rest.py): the value
came back in the error message. A name that has the shape of one is still repeated (last cases).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from canaries import CANARIES, Scanner
from fastapi.testclient import TestClient
from veil_server import Settings, create_app

EMAIL, NAME, SIN = CANARIES["email"], CANARIES["name"], CANARIES["sin"]
USER = {"Authorization": "Bearer sk-user"}
ADMIN = {"Authorization": "Bearer sk-admin"}
HELLO = [{"role": "user", "content": "Bonjour"}]

LEAKS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "unknown model": ("POST", "/v1/chat/completions", {"json": {"model": EMAIL, "messages": HELLO}}),
    "unknown model, digits only": ("POST", "/v1/embeddings", {"json": {"model": SIN.replace(" ", ""), "input": "x"}}),
    "model in the path": ("GET", f"/v1/models/{EMAIL}", {}),
    "unknown URL": ("GET", f"/v1/{EMAIL}", {}),
    "method not allowed on a path": ("DELETE", f"/v1/models/{NAME}", {}),
    "unknown argument's name": ("POST", "/v1/anonymize", {"json": {"text": "x", EMAIL: 1}}),
    "mapping key in the error's location": ("PUT", "/v1/anonymize", {"json": {"text": "x", "mapping": {EMAIL: 1}}}),
    "existing_mapping written the wrong way round": (
        "POST", "/v1/anonymize", {"json": {"text": "x", "existing_mapping": {EMAIL: "{{EMAIL_1}}"}}},
    ),
    "usage group_by": ("GET", f"/v1/usage?group_by={NAME}", {}),
    "webhook event": ("POST", "/v1/admin/webhooks", {"json": {"url": "http://127.0.0.1/x", "events": [EMAIL]},
                                                     "headers": ADMIN}),
    "webhook id": ("GET", f"/v1/admin/webhooks/{EMAIL}", {"headers": ADMIN}),
    "key scope": ("POST", "/v1/admin/keys", {"json": {"scopes": [EMAIL]}, "headers": ADMIN}),
    "key policy entity": ("POST", "/v1/admin/keys", {"json": {"scopes": ["chat"], "policy": {"entities": [NAME]}},
                                                     "headers": ADMIN}),
    "token scope": ("POST", "/v1/auth/token", {"json": {"scopes": [EMAIL]}}),
    "reveal request id": ("POST", "/v1/anonymization/reverse", {"json": {"request_id": EMAIL}}),
    "approval request id": ("POST", f"/v1/approvals/{EMAIL}/approve", {"headers": ADMIN}),
}  # fmt: skip


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    keys = [{"key": "sk-user", "scopes": ["chat", "embeddings", "anonymize", "models", "usage", "reverse"]},
            {"key": "sk-admin", "name": "admin", "scopes": ["admin"]}]  # fmt: skip
    settings = Settings(server={"keys": keys, "state_url": "memory"}, vault={"url": "memory"}, policy={"ner": "off"},
                        models={"echo": {"provider": "echo"}})  # fmt: skip
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize("case", LEAKS.values(), ids=LEAKS.keys())
def test_an_error_does_not_repeat_a_canary_the_client_sent(client: TestClient, case: tuple[str, str, Any]) -> None:
    method, path, options = case
    answer = client.request(method, path, **{"headers": USER, **options})
    assert 400 <= answer.status_code < 500, answer.text
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    assert Scanner().find(answer.text) == [], answer.text


def test_names_shaped_like_names_are_still_repeated(client: TestClient) -> None:
    def message(method: str, path: str, **options: Any) -> str:
        return str(client.request(method, path, **{"headers": USER, **options}).json()["error"]["message"])

    assert "`gpt-nothing`" in message("POST", "/v1/chat/completions", json={"model": "gpt-nothing", "messages": HELLO})
    assert "/v1/nothing/here" in message("GET", "/v1/nothing/here")
    assert "'everything'" in message("POST", "/v1/auth/token", json={"scopes": ["everything"]})
    assert "rvl_0123" in message("POST", "/v1/anonymization/reverse", json={"request_id": "rvl_0123"})
    assert "messages.0.role" in message("POST", "/v1/chat/completions", json={"model": "echo",
                                                                             "messages": [{"role": "x"}]})  # fmt: skip


def test_the_access_log_names_the_route_never_the_url(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "veil_server.access")
    client.get(f"/v1/models/{EMAIL}", headers=USER)
    client.get(f"/v1/{EMAIL}?q={NAME}", headers=USER)
    lines = [r.getMessage() for r in caplog.records if r.name == "veil_server.access"]
    assert lines[0].startswith("GET /v1/models/{model:path} 404 ")
    assert lines[1].startswith("GET (no route) 404 ")
    assert Scanner().find("\n".join(lines)) == []


def test_veil_serve_turns_uvicorns_access_log_off_and_shows_veils() -> None:
    from veil_server.cli import log_config

    config = log_config("info")
    assert config["loggers"]["veil_server"] == {"handlers": ["default"], "level": "INFO", "propagate": False}
