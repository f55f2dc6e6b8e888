"""The auth matrix: every route × scope × credential kind × tenant, allowed and refused.

One row per route (`ROUTES`): the scope that lets a caller in (`PUBLIC` for no authentication,
`ANY_KEY` for any valid API key), a valid request, and the status an allowed request gets. For
each row, every single-scope credential of two tenants is tried in four kinds (a configured key,
a stored key, and an access token of each), plus no credential at all:

- a credential with the row's scope (or `admin`) passes the gate and gets `ok`;
- one without it gets 403 `insufficient_scope`; no credential gets 401 `missing_api_key`;
- on a `tenant_bound` row, the resource belongs to tenant `acme`: `globex` gets 404, as for an
  id that does not exist;
- bad credentials of an `admin` key (`BAD_KINDS`: revoked, a token of a revoked key, expired,
  forged, for another audience, unknown) get 401 `invalid_api_key` on every non-public row;
- a token of an `admin` key narrowed to `chat` is treated exactly as a `chat` credential.

`test_every_route_has_a_row` fails when the app gains a route without a row here. Adding one:

    Row("GET", "/v1/usage", "usage"),
    Row("POST", "/v1/anonymization/reverse", "reverse", {"request_id": "r"}, ok=None),

(`ok=None`: the route may refuse a request for its own reasons once past the gate, e.g. missing
approvals; the matrix then checks only that the gate lets it through, and that it is no 5xx).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fastapi.routing
import jwt
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route
from veil_server import Settings, create_app
from veil_server.access_tokens import AUDIENCE
from veil_server.gateway import Gateway
from veil_server.settings import SCOPES

PUBLIC = "public"
ANY_KEY = "any key"
TENANTS = ("acme", "globex")
KINDS = ("config", "stored", "token-of-stored", "token-of-config")
BAD_KINDS = ("revoked", "token-of-revoked", "expired-token", "forged-token", "audience-token", "unknown-key")
TEXT = "Écrivez à marie.tremblay@exemple.qc.ca"


@dataclass
class Context:
    client: TestClient
    gateway: Gateway
    credentials: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """(kind, tenant, scope) → what goes after `Bearer`."""

    def acme_key_id(self) -> str:
        return self.gateway.keys.create(tenant="acme", scopes=["chat"], name="victim").record.id


Url = str | Callable[[Context], str]


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    """The route's path as FastAPI lists it (`/v1/models/{model:path}`)."""
    scope: str
    body: dict[str, Any] | None = None
    url: Url | None = None
    """The URL to call when the path has parameters (a function of the context when it must be made)."""
    ok: int | None = 200
    tenant_bound: bool = False
    not_found: str = "key_not_found"
    """The error code another tenant gets on a `tenant_bound` row."""
    tokens_accepted: bool = True


def _acme_key(ctx: Context) -> str:
    return f"/v1/admin/keys/{ctx.acme_key_id()}"


def _acme_webhook(suffix: str = "") -> Callable[[Context], str]:
    def url(ctx: Context) -> str:
        subscription, _ = ctx.gateway.webhooks.store.create("acme", HOOK, ["completion.done"])
        return f"/v1/admin/webhooks/{subscription.id}{suffix}"

    return url


def _acme_approval(ctx: Context) -> str:
    request = ctx.gateway.reversal.control.request(requester="someone", tenant="acme", scope="conv-1", reason="r")
    return f"/v1/approvals/{request.id}/approve"


HOOK = "http://127.0.0.1:9/hook"  # loopback, nothing listens: a ping's delivery fails at once, locally
WEBHOOK = "/v1/admin/webhooks/{subscription_id}"


ROUTES = [
    Row("POST", "/v1/chat/completions", "chat", {"model": "echo", "messages": [{"role": "user", "content": TEXT}]}),
    Row("POST", "/v1/completions", "chat", {"model": "echo", "prompt": TEXT}),
    Row("POST", "/v1/embeddings", "embeddings", {"model": "echo-embedding", "input": TEXT}),
    Row("GET", "/v1/models", "models"),
    Row("GET", "/v1/models/{model:path}", "models", url="/v1/models/echo"),
    Row("POST", "/v1/anonymize", "anonymize", {"text": TEXT}),
    Row("PUT", "/v1/anonymize", "anonymize", {"text": "{{EMAIL_1}}", "mapping": {"{{EMAIL_1}}": "a@b.ca"}}),
    Row("POST", "/v1/anonymization/scan", "scan", {"text": TEXT}),
    Row("GET", "/v1/usage", "usage"),
    Row("POST", "/v1/auth/token", ANY_KEY, {}, tokens_accepted=False),
    Row("POST", "/v1/admin/keys", "admin", {"scopes": ["chat"], "name": "from the matrix"}),
    Row("GET", "/v1/admin/keys", "admin"),
    Row("GET", "/v1/admin/keys/{key_id}", "admin", url=_acme_key, tenant_bound=True),
    Row("DELETE", "/v1/admin/keys/{key_id}", "admin", url=_acme_key, tenant_bound=True),
    Row("POST", "/v1/admin/webhooks", "admin", {"url": HOOK, "events": ["completion.done"]}, ok=201),
    Row("GET", "/v1/admin/webhooks", "admin"),
    Row("GET", WEBHOOK, "admin", url=_acme_webhook(), tenant_bound=True, not_found="webhook_not_found"),
    Row("DELETE", WEBHOOK, "admin", url=_acme_webhook(), tenant_bound=True, not_found="webhook_not_found"),
    Row(
        "GET",
        WEBHOOK + "/deliveries",
        "admin",
        url=_acme_webhook("/deliveries"),
        tenant_bound=True,
        not_found="webhook_not_found",
    ),
    Row(
        "POST",
        WEBHOOK + "/ping",
        "admin",
        url=_acme_webhook("/ping"),
        ok=None,
        tenant_bound=True,
        not_found="webhook_not_found",
    ),
    Row(
        "POST",
        WEBHOOK + "/rotate-secret",
        "admin",
        url=_acme_webhook("/rotate-secret"),
        ok=None,
        tenant_bound=True,
        not_found="webhook_not_found",
    ),
    Row("POST", "/v1/approvals", "reverse", {"scope": "conv-1", "reason": "the matrix"}, ok=201),
    Row("GET", "/v1/approvals", "admin"),
    Row(
        "POST",
        "/v1/approvals/{request_id}/approve",
        "admin",
        url=_acme_approval,
        ok=None,
        tenant_bound=True,
        not_found="approval_request_not_found",
    ),
    Row("POST", "/v1/anonymization/reverse", "reverse", {"request_id": "rvl_0123456789abcdef01234567"}, ok=None),
    Row("GET", "/healthz", PUBLIC),
    Row("GET", "/readyz", PUBLIC),
    Row("GET", "/metrics", PUBLIC),
    Row("GET", "/openapi.json", PUBLIC),
]


def config_key(tenant: str, scope: str) -> str:
    return f"sk-config-{tenant}-{scope.replace(':', '-')}"


@pytest.fixture(scope="module")
def ctx() -> Iterator[Context]:
    keys = [
        {"key": config_key(tenant, scope), "name": f"config-{tenant}-{scope}", "tenant": tenant, "scopes": [scope]}
        for tenant in TENANTS
        for scope in SCOPES
    ]
    hooks = {"allow_private_addresses": True, "max_subscriptions": 100_000}  # HOOK is loopback; many rows
    settings = Settings(server={"keys": keys, "state_url": "memory", "webhooks": hooks}, vault={"url": "memory"},
                        policy={"ner": "off"})  # fmt: skip
    app = create_app(settings)
    with TestClient(app) as client:
        context = Context(client, app.state.gateway)
        for tenant in TENANTS:
            for scope in SCOPES:
                stored = context.gateway.keys.create(tenant=tenant, scopes=[scope]).key
                context.credentials[("config", tenant, scope)] = config_key(tenant, scope)
                context.credentials[("stored", tenant, scope)] = stored
                for kind, key in (("token-of-stored", stored), ("token-of-config", config_key(tenant, scope))):
                    answer = client.post("/v1/auth/token", headers={"Authorization": f"Bearer {key}"})
                    assert answer.status_code == 200, answer.text
                    context.credentials[(kind, tenant, scope)] = answer.json()["access_token"]
        add_bad_and_narrowed_credentials(context)
        yield context


def add_bad_and_narrowed_credentials(ctx: Context) -> None:
    def issue(key: str, **body: Any) -> str:
        answer = ctx.client.post("/v1/auth/token", json=body, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text
        value: str = answer.json()["access_token"]
        return value

    revoked = ctx.gateway.keys.create(tenant="acme", scopes=["admin"])
    ctx.credentials[("token-of-revoked", "acme", "admin")] = issue(revoked.key)
    ctx.gateway.keys.revoke(revoked.record.id)
    ctx.credentials[("revoked", "acme", "admin")] = revoked.key
    admin = ctx.credentials[("stored", "acme", "admin")]
    record = ctx.gateway.keys.verify(admin)
    assert record is not None
    now = int(time.time())
    claims = {"iss": ctx.gateway.tokens.issuer, "aud": AUDIENCE, "sub": record.id, "iat": now - 3600,
              "exp": now + 600, "jti": "j", "tenant": "acme", "scopes": ["admin"], "src": "store"}  # fmt: skip
    secret = ctx.gateway.tokens.secret()
    ctx.credentials[("expired-token", "acme", "admin")] = jwt.encode({**claims, "exp": now - 60}, secret)
    ctx.credentials[("forged-token", "acme", "admin")] = jwt.encode(claims, b"another secret of 32 bytes or more")
    ctx.credentials[("audience-token", "acme", "admin")] = jwt.encode({**claims, "aud": "another-api"}, secret)
    ctx.credentials[("unknown-key", "acme", "admin")] = "sk-veil-0123456789abcdef_" + "A" * 43
    ctx.credentials[("token-narrowed", "acme", "chat")] = issue(admin, scopes=["chat"])


def expected(row: Row, kind: str, tenant: str, scope: str | None) -> tuple[int | None, str | None]:
    """(status, error code) the gate should give; status None: whatever the route answers but 401/403/5xx."""
    if row.scope == PUBLIC:
        return row.ok, None
    if scope is None:
        return 401, "missing_api_key"
    if kind in BAD_KINDS:
        return 401, "invalid_api_key"
    if not row.tokens_accepted and kind.startswith("token"):
        return 401, "invalid_api_key"
    if row.scope != ANY_KEY and scope not in (row.scope, "admin"):
        return 403, "insufficient_scope"
    if row.tenant_bound and tenant != "acme":
        return 404, row.not_found
    return row.ok, None


def call(ctx: Context, row: Row, credential: str | None) -> Any:
    url = row.url(ctx) if callable(row.url) else (row.url or row.path)
    headers = {"Authorization": f"Bearer {credential}"} if credential is not None else {}
    return ctx.client.request(row.method, url, json=row.body, headers=headers)


@pytest.mark.parametrize("row", ROUTES, ids=lambda row: f"{row.method} {row.path}")
def test_route_admits_exactly_the_callers_its_scope_names(ctx: Context, row: Row) -> None:
    cases: list[tuple[str, str, str | None]] = [("none", "acme", None)]
    cases += [(kind, tenant, scope) for kind in KINDS for tenant in TENANTS for scope in sorted(SCOPES)]
    cases += [(kind, "acme", "admin") for kind in BAD_KINDS] + [("token-narrowed", "acme", "chat")]
    wrong = []
    for kind, tenant, scope in cases:
        credential = None if scope is None else ctx.credentials[(kind, tenant, scope)]
        answer = call(ctx, row, credential)
        status, code = expected(row, kind, tenant, scope)
        got_code = answer.json().get("error", {}).get("code") if answer.status_code >= 400 else None
        if status is None:
            bad = answer.status_code >= 500 or answer.status_code == 401 or got_code == "insufficient_scope"
        else:
            bad = answer.status_code != status or (code is not None and got_code != code)
        if bad:
            wrong.append(f"{kind}/{tenant}/{scope}: expected {status} {code}, got {answer.status_code} {got_code}")
    assert not wrong, f"{row.method} {row.path}:\n" + "\n".join(wrong)


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app serves (HEAD, which Starlette adds to GET, left out). FastAPI
    0.16x wraps included routers; `iter_route_contexts` walks into them, as its OpenAPI does."""
    contexts: list[tuple[Any, str | None]]
    if hasattr(fastapi.routing, "iter_route_contexts"):
        contexts = [(c.original_route, c.path) for c in fastapi.routing.iter_route_contexts(app.routes)]
    else:
        contexts = [(route, getattr(route, "path", None)) for route in app.routes]
    found = set()
    for route, path in contexts:
        if isinstance(route, APIRoute | Route) and path is not None:
            found.update((method, path) for method in route.methods or () if method != "HEAD")
    assert len(found) > 3, "the route walk found (almost) nothing: FastAPI's routing changed"
    return found


def missing_rows(app: FastAPI, rows: list[Row]) -> list[str]:
    covered = {(row.method, row.path) for row in rows}
    return sorted(f"{method} {path}" for method, path in app_routes(app) - covered)


def test_every_route_has_a_row(ctx: Context) -> None:
    app = ctx.client.app
    assert isinstance(app, FastAPI)
    assert missing_rows(app, ROUTES) == [], "add a Row for each of these routes to ROUTES"
    stale = sorted(f"{r.method} {r.path}" for r in ROUTES if (r.method, r.path) not in app_routes(app))
    assert stale == [], "these rows name routes the app does not have"


def test_the_guard_reports_a_route_without_a_row() -> None:
    app = create_app(Settings(server={"state_url": "memory"}, vault={"url": "memory"}, policy={"ner": "off"}))

    @app.get("/v1/forgotten")
    async def forgotten() -> dict[str, str]:
        return {}

    assert missing_rows(app, ROUTES) == ["GET /v1/forgotten"]
