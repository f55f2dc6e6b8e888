"""Access through HTTP: stored keys and access tokens, revocation across replicas, the admin API,
key policies applied to requests, and errors that are OpenAI error objects (never a 422)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from services import POSTGRES_DSN, postgres_schema
from test_auth_matrix import ROUTES
from veil_server import Settings, create_app
from veil_server.access_tokens import AUDIENCE
from veil_server.gateway import Gateway

TEXT = "Écrivez à marie.tremblay@exemple.qc.ca ou au 514 872 3456."
ADMIN = "sk-config-admin"
CHAT = [{"role": "user", "content": TEXT}]


def settings(state_url: str = "memory", **server: Any) -> Settings:
    keys = [{"key": ADMIN, "name": "ops", "tenant": "acme", "scopes": ["admin"]}]
    return Settings(server={"keys": keys, "state_url": state_url, **server}, vault={"url": "memory"},
                    policy={"ner": "off"})  # fmt: skip


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(settings())) as test_client:
        yield test_client


def gateway_of(client: TestClient) -> Gateway:
    gateway: Gateway = client.app.state.gateway  # type: ignore[attr-defined]
    return gateway


def create_key(client: TestClient, **body: Any) -> dict[str, Any]:
    answer = client.post("/v1/admin/keys", json={"scopes": ["chat"], **body}, headers=bearer(ADMIN))
    assert answer.status_code == 200, answer.text
    created: dict[str, Any] = answer.json()
    return created


def token(client: TestClient, key: str, **body: Any) -> str:
    answer = client.post("/v1/auth/token", json=body, headers=bearer(key))
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "bearer"
    value: str = answer.json()["access_token"]
    return value


def error_of(answer: Any) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


def chat(client: TestClient, credential: str, **extra: Any) -> Any:
    headers = {**bearer(credential), **extra.pop("headers", {})}
    return client.post("/v1/chat/completions", json={"model": "echo", "messages": CHAT, **extra}, headers=headers)


# -- the admin API -------------------------------------------------------------------------------


def test_a_created_key_is_shown_once_and_works_at_once(client: TestClient) -> None:
    created = create_key(client, name="support bot", scopes=["chat", "scan"], limits={"requests_per_minute": 5})
    key = created["key"]
    assert created["object"] == "api_key" and created["tenant"] == "acme" and created["created_by"] == "ops"
    assert created["scopes"] == ["chat", "scan"] and created["limits"]["requests_per_minute"] == 5
    assert chat(client, key).status_code == 200
    listed = client.get("/v1/admin/keys", headers=bearer(ADMIN)).json()
    assert key not in str(listed) and key.split("_", 1)[1] not in str(listed)
    assert [k["id"] for k in listed["data"]] == [created["id"]]
    one = client.get(f"/v1/admin/keys/{created['id']}", headers=bearer(ADMIN)).json()
    assert "key" not in one and one["redacted_key"].endswith(key[-4:])


def test_a_revoked_key_and_its_tokens_are_refused_from_the_next_request_on(client: TestClient) -> None:
    created = create_key(client)
    key = created["key"]
    access = token(client, key)
    assert chat(client, access).status_code == 200
    revoked = client.delete(f"/v1/admin/keys/{created['id']}", headers=bearer(ADMIN)).json()
    assert revoked["revoked_at"] is not None
    for credential in (key, access):
        answer = chat(client, credential)
        assert answer.status_code == 401
        error = error_of(answer)
        assert error["code"] == "invalid_api_key" and "revoked" in error["message"]
        assert credential not in error["message"]


def test_an_admin_sees_and_touches_only_its_own_tenants_keys(client: TestClient) -> None:
    gateway = gateway_of(client)
    other = gateway.keys.create(tenant="globex", scopes=["admin"])
    theirs = gateway.keys.create(tenant="globex", scopes=["chat"]).record.id
    for method in ("GET", "DELETE"):
        answer = client.request(method, f"/v1/admin/keys/{theirs}", headers=bearer(ADMIN))
        assert answer.status_code == 404 and error_of(answer)["code"] == "key_not_found"
    record = gateway.keys.get(theirs)
    assert record is not None and not record.revoked
    globex_list = client.get("/v1/admin/keys", headers=bearer(other.key)).json()["data"]
    assert {k["tenant"] for k in globex_list} == {"globex"}
    answer = client.post("/v1/admin/keys", json={"scopes": ["chat"], "tenant": "acme"}, headers=bearer(other.key))
    assert answer.status_code == 400 and error_of(answer)["param"] == "tenant"  # the tenant is the caller's


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"scopes": ["everything"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"scopes": "chat"}, "scopes"),
        ({"scopes": ["chat"], "policy": {"entities": ["NOT_AN_ENTITY"]}}, "policy.entities"),
        ({"scopes": ["chat"], "policy": {"mode": "lax"}}, "policy.mode"),
        ({"scopes": ["chat"], "limits": {"requests_per_minute": 0}}, "limits.requests_per_minute"),
        ({"scopes": ["chat"], "name": "x" * 101}, "name"),
    ],
)
def test_a_bad_key_request_is_a_400_naming_the_field(client: TestClient, body: dict[str, Any], param: str) -> None:
    answer = client.post("/v1/admin/keys", json=body, headers=bearer(ADMIN))
    assert answer.status_code == 400
    assert error_of(answer)["param"] == param
    assert gateway_of(client).keys.list() == []


# -- access tokens -------------------------------------------------------------------------------


def test_a_token_can_be_narrowed_never_widened_and_never_exchanged_for_another(client: TestClient) -> None:
    key = create_key(client, scopes=["chat", "scan"])["key"]
    narrow = token(client, key, scopes=["chat"], expires_in=60)
    assert chat(client, narrow).status_code == 200
    scan = client.post("/v1/anonymization/scan", json={"text": TEXT}, headers=bearer(narrow))
    assert scan.status_code == 403 and error_of(scan)["code"] == "insufficient_scope"
    wider = client.post("/v1/auth/token", json={"scopes": ["chat", "admin"]}, headers=bearer(key))
    assert wider.status_code == 403 and error_of(wider)["code"] == "insufficient_scope"
    longer = client.post("/v1/auth/token", json={"expires_in": 10_000}, headers=bearer(key))
    assert longer.status_code == 400 and error_of(longer)["param"] == "expires_in"
    again = client.post("/v1/auth/token", json={}, headers=bearer(narrow))
    assert again.status_code == 401 and error_of(again)["code"] == "invalid_api_key"


def test_expired_forged_and_foreign_tokens_are_401_without_echo(client: TestClient) -> None:
    key = create_key(client)
    secret = gateway_of(client).tokens.secret()
    now = int(time.time())
    claims = {"iss": "veil-server", "aud": AUDIENCE, "sub": key["id"], "iat": now - 1000, "exp": now + 600,
              "jti": "x", "tenant": "acme", "scopes": ["chat"], "src": "store"}  # fmt: skip
    cases = {
        "expired": jwt.encode({**claims, "exp": now - 120}, secret, algorithm="HS256"),
        "signature": jwt.encode(claims, b"not the server's secret, 32+ bytes", algorithm="HS256"),
        "audience": jwt.encode({**claims, "aud": "another-api"}, secret, algorithm="HS256"),
        "issuer": jwt.encode({**claims, "iss": "someone"}, secret, algorithm="HS256"),
        "no longer exists": jwt.encode({**claims, "tenant": "globex"}, secret, algorithm="HS256"),
    }
    assert chat(client, jwt.encode(claims, secret, algorithm="HS256")).status_code == 200  # the control
    for reason, forged in cases.items():
        answer = chat(client, forged)
        assert answer.status_code == 401, reason
        error = error_of(answer)
        assert error["code"] == "invalid_api_key" and reason in error["message"]
        assert forged not in answer.text and forged[-8:] not in answer.text


def test_the_openai_sdk_works_with_an_access_token(client: TestClient) -> None:
    import openai

    key = create_key(client)["key"]
    access = token(client, key)
    with openai.OpenAI(base_url="http://testserver/v1", api_key=access, http_client=client, max_retries=0) as sdk:
        answer = sdk.chat.completions.create(model="echo", messages=CHAT)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == TEXT


# -- the key's policy ------------------------------------------------------------------------------


def test_a_keys_policy_decides_anonymization_its_mode_opt_out_and_entities(client: TestClient) -> None:
    plain = create_key(client, policy={"anonymize": False})["key"]
    assert chat(client, plain).json()["veil"]["anonymized"] is False
    assert chat(client, plain, headers={"X-Anonymize": "true"}).json()["veil"]["pii_count"] == 2
    forced = create_key(client, policy={"allow_opt_out": False})["key"]
    refused = chat(client, forced, anonymize=False)
    assert refused.status_code == 403 and error_of(refused)["code"] == "anonymization_required"
    emails = create_key(client, scopes=["anonymize", "scan"], policy={"entities": ["email"]})["key"]
    only = client.post("/v1/anonymize", json={"text": TEXT}, headers=bearer(emails)).json()
    assert only["pii_types"] == ["EMAIL"] and "514 872 3456" in only["anonymized_text"]
    spans = client.post("/v1/anonymization/scan", json={"text": TEXT}, headers=bearer(emails)).json()["spans"]
    assert {s["entity"] for s in spans} == {"EMAIL"}
    everything = create_key(client, scopes=["anonymize"])["key"]
    full = client.post("/v1/anonymize", json={"text": TEXT}, headers=bearer(everything)).json()
    assert full["pii_types"] == ["EMAIL", "PHONE"]
    assert chat(client, create_key(client, policy={"entities": ["PHONE"]})["key"]).json()["veil"]["pii_types"] == [
        "PHONE"
    ]


def test_a_config_keys_entities_outside_the_server_policy_stop_the_start() -> None:
    keys = [{"key": "k" * 20, "scopes": ["chat"], "policy": {"entities": ["CA_SIN"]}}]
    with pytest.raises(ValueError, match="does not report CA_SIN"):
        create_app(Settings(server={"keys": keys, "state_url": "memory"}, vault={"url": "memory"},
                            policy={"ner": "off", "entities": ["EMAIL"]}))  # fmt: skip


# -- open mode -------------------------------------------------------------------------------------


def test_a_server_without_keys_is_open_until_the_first_key_and_stays_closed() -> None:
    app = create_app(Settings(server={"state_url": "memory"}, vault={"url": "memory"}, policy={"ner": "off"}))
    with TestClient(app) as client:
        assert chat(client, "anything").status_code == 200
        assert client.post("/v1/chat/completions", json={"model": "echo", "messages": CHAT}).status_code == 200
        refused = client.post("/v1/auth/token", headers=bearer("anything"))
        assert refused.status_code == 401 and error_of(refused)["code"] == "missing_api_key"
        keys = gateway_of(client).keys
        created = keys.create(tenant="default", scopes=["chat"])
        missing = client.post("/v1/chat/completions", json={"model": "echo", "messages": CHAT})
        assert missing.status_code == 401 and error_of(missing)["code"] == "missing_api_key"
        assert chat(client, "anything").status_code == 401
        assert chat(client, created.key).status_code == 200
        keys.revoke(created.record.id)
        assert chat(client, "anything").status_code == 401  # revoking every key does not reopen it


# -- replicas --------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "server.db")
        return
    schemas = postgres_schema()
    schema = next(schemas)
    yield f"{POSTGRES_DSN}?options=-csearch_path%3D{schema}"
    next(schemas, None)


def test_two_replicas_share_keys_tokens_and_revocations(shared_state: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if shared_state.startswith("postgresql"):
        # The state schema is named by the URL's search_path here only so that each test gets its own.
        monkeypatch.setattr("veil_server.state.StateDB.for_url", _schema_from_url)
    first, second = create_app(settings(shared_state)), create_app(settings(shared_state))
    with TestClient(first) as one, TestClient(second) as two:
        created = create_key(one, scopes=["chat"])
        access = token(one, created["key"])
        assert chat(two, created["key"]).status_code == 200
        assert chat(two, access).status_code == 200  # the same signing secret, from the state database
        assert two.delete(f"/v1/admin/keys/{created['id']}", headers=bearer(ADMIN)).status_code == 200
        assert chat(one, created["key"]).status_code == 401
        assert chat(one, access).status_code == 401


def _schema_from_url(url: str | None, *, connect_timeout: float = 10.0) -> Any:
    from veil_server.state import StateDB

    assert url is not None
    base, _, options = url.partition("?options=-csearch_path%3D")
    if options:
        return StateDB(base, schema=options, connect_timeout=connect_timeout)
    return StateDB(url, connect_timeout=connect_timeout)


def test_replicas_with_the_environment_secret_agree_and_others_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEIL_TEST_JWT_A", "a" * 48)
    monkeypatch.setenv("VEIL_TEST_JWT_B", "b" * 48)
    with TestClient(create_app(settings(jwt_secret_env="VEIL_TEST_JWT_A"))) as one:
        access = token(one, ADMIN, scopes=["admin"])
        assert client_get_keys(one, access).status_code == 200
        with TestClient(create_app(settings(jwt_secret_env="VEIL_TEST_JWT_A"))) as same:
            assert client_get_keys(same, access).status_code == 200  # a config key's token, another replica
        with TestClient(create_app(settings(jwt_secret_env="VEIL_TEST_JWT_B"))) as other:
            refused = client_get_keys(other, access)
            assert refused.status_code == 401 and "signature" in error_of(refused)["message"]
    monkeypatch.setenv("VEIL_TEST_JWT_A", "short")
    with pytest.raises(ValueError, match="at least 32"):
        create_app(settings(jwt_secret_env="VEIL_TEST_JWT_A"))


def client_get_keys(client: TestClient, credential: str) -> Any:
    return client.get("/v1/admin/keys", headers=bearer(credential))


def test_an_unreachable_key_store_refuses_requests_with_503(monkeypatch: pytest.MonkeyPatch) -> None:
    schemas = postgres_schema()
    schema = next(schemas)
    monkeypatch.setattr("veil_server.state.StateDB.for_url", _schema_from_url)
    app = create_app(settings(f"{POSTGRES_DSN}?options=-csearch_path%3D{schema}"))
    with TestClient(app) as client:
        key = create_key(client)["key"]
        assert client.get("/readyz").json()["checks"]["state"] == "ok"
        gateway_of(client).state.close()  # the pool is gone: no connection can be had
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["state"].startswith("unavailable")
        answer = chat(client, key)
        assert answer.status_code == 503 and error_of(answer)["code"] == "state_unavailable"
        assert answer.headers["retry-after"] == "1"
        assert chat(client, ADMIN).status_code == 200  # configured keys need no state database
        refused = client.get("/v1/admin/keys", headers=bearer(ADMIN))
        assert refused.status_code == 503 and error_of(refused)["code"] == "state_unavailable"
    next(schemas, None)


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("row", [row for row in ROUTES if row.method in ("POST", "PUT")], ids=lambda r: r.path)
def test_no_route_answers_fastapis_422(client: TestClient, row: Any) -> None:
    for body in ("{not json", "[1, 2]", '{"model": 5, "messages": "x", "text": [], "scopes": 3, "input": {}}'):
        answer = client.request(row.method, row.path, content=body, headers={**bearer(ADMIN),
                                "Content-Type": "application/json"})  # fmt: skip
        assert answer.status_code != 422, (row.path, body, answer.text)
        if answer.status_code >= 400:
            error_of(answer)
    spec = client.get("/openapi.json").json()
    assert "422" not in str([op.get("responses", {}) for ops in spec["paths"].values() for op in ops.values()])


def test_with_a_key_cache_a_revocation_elsewhere_holds_within_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("veil_server.access.time.monotonic", lambda: clock[0])
    state_url = str(tmp_path / "server.db")
    first = create_app(settings(state_url, key_cache_seconds=30))
    second = create_app(settings(state_url, key_cache_seconds=30))
    with TestClient(first) as one, TestClient(second) as two:
        created = create_key(one)
        access = token(one, created["key"])
        assert chat(one, created["key"]).status_code == 200 and chat(one, access).status_code == 200  # cached
        assert two.delete(f"/v1/admin/keys/{created['id']}", headers=bearer(ADMIN)).status_code == 200
        assert chat(two, created["key"]).status_code == 401  # the replica that revoked it: at once
        clock[0] += 29
        assert chat(one, created["key"]).status_code == 200  # another replica: within the documented bound
        clock[0] += 2
        assert chat(one, created["key"]).status_code == 401 and chat(one, access).status_code == 401
        again = create_key(one)
        assert chat(one, again["key"]).status_code == 200
        assert one.delete(f"/v1/admin/keys/{again['id']}", headers=bearer(ADMIN)).status_code == 200
        assert chat(one, again["key"]).status_code == 401  # revoked here: this replica's cache forgets it
