"""No personal data at rest: every endpoint of a real gateway, and the core Session, driven with the
canaries (tests/canaries.py), then every stored byte read back raw and searched for them.

Stores, on each backend: the vault (SQLite file, PostgreSQL, Redis), the server's state database
(SQLite file, PostgreSQL: keys, usage rows, approvals, audit records, webhook subscriptions,
deliveries and attempts), the Redis limiter, and every file under the test's directory (SQLite
files with their WAL, read while the gateway runs and again after it stopped; key files). A
canary must appear in none of them, in none of the forms `Canary.forms` lists, nor in a webhook
payload, a /metrics page, an error answered to a bad request that carries one, or the message of
an exception the core raises for bad input. Answers that hand values back on purpose (restored
chat, the mapping of a reveal with approvals) are checked to hold them: the canaries went through.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from canaries import CANARIES, FULL_CANARY_TEXT, Scanner, StoredValues, canaries_in
from fastapi.testclient import TestClient
from services import REDIS_URL, postgres_database, redis_prefix
from veil_server import Settings, create_app

from veil.errors import ConfigError, IntegrityError, TokenNotFound, VeilError
from veil.session import Veil

SCOPE = "case-42"
TOOLS = [{"type": "function", "function": {"name": "send_email", "parameters": {
    "type": "object", "properties": {"body": {"type": "string"}}, "required": ["body"]}}}]  # fmt: skip
KEYS = {
    "sk-pii-user": {"name": "user", "scopes": ["chat", "embeddings", "anonymize", "scan", "models", "mapping:read",
                                               "usage", "reverse"]},
    "sk-pii-admin-a": {"name": "admin-a", "scopes": ["admin"]},
    "sk-pii-admin-b": {"name": "admin-b", "scopes": ["admin"]},
    "sk-pii-limited": {"name": "limited", "scopes": ["chat"], "limits": {"requests_per_day": 1}},
}  # fmt: skip


# -- the stores ---------------------------------------------------------------------------------


@dataclass
class Backend:
    name: str
    vault: dict[str, Any]
    server: dict[str, Any]
    dump: Callable[[StoredValues], None]
    """Reads every stored value of the backend's databases into the collection."""


def dump_files(root: Path, values: StoredValues, when: str) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        values.add(f"{when} file {path.relative_to(root)}", path.read_bytes())


def dump_sqlite(path: Path, values: StoredValues) -> None:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cursor = connection.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, cell in zip(columns, row, strict=True):
                    values.add(f"sqlite {path.name} {table}.{column}", cell)
    finally:
        connection.close()


def dump_postgres(dsn: str, values: StoredValues) -> None:
    import psycopg

    with psycopg.connect(dsn) as connection:
        tables = connection.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        assert tables, "no table in the PostgreSQL database: the gateway did not use it"
        for schema, table in tables:
            cursor = connection.execute(f'SELECT * FROM "{schema}"."{table}"')
            columns = [d.name for d in cursor.description or ()]
            for row in cursor.fetchall():
                for column, cell in zip(columns, row, strict=True):
                    values.add(f"postgresql {schema}.{table}.{column}", cell)


def dump_redis(prefixes: list[str], values: StoredValues) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        for prefix in prefixes:
            for key in client.scan_iter(f"{prefix}*"):
                where = f"redis {key!r}"
                values.add(f"{where} (key)", key)
                kind = client.type(key).decode()
                if kind == "string":
                    values.add(where, client.get(key))
                elif kind == "hash":
                    for field, value in client.hgetall(key).items():
                        values.add(f"{where} {field!r}", field)
                        values.add(f"{where} {field!r}", value)
                elif kind == "list":
                    for item in client.lrange(key, 0, -1):
                        values.add(where, item)
                elif kind in ("set", "zset"):
                    members = client.smembers(key) if kind == "set" else client.zrange(key, 0, -1)
                    for item in members:
                        values.add(where, item)
                else:
                    values.add(where, client.dump(key))
    finally:
        client.close()


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    monkeypatch.setenv("VEIL_HOME", str(tmp_path / "home"))
    state_file = tmp_path / "server.db"
    if request.param == "sqlite":
        vault_dir = tmp_path / "vault"

        def dump(values: StoredValues) -> None:
            dump_sqlite(state_file, values)
            for path in vault_dir.glob("*.db"):
                dump_sqlite(path, values)

        yield Backend("sqlite", {"url": str(vault_dir)}, {"state_url": str(state_file)}, dump)
    elif request.param == "postgresql":
        with postgres_database() as dsn:
            yield Backend("postgresql", {"url": dsn}, {"state_url": dsn}, lambda values: dump_postgres(dsn, values))
    else:
        prefixes = redis_prefix()
        prefix = next(prefixes)
        import veil_server.gateway

        from veil.vault.redis import RedisVault

        def build_veil(settings: Settings, engine: Any) -> Veil:  # the real vault, under this test's own prefix
            keys = veil_server.gateway._key_provider(settings)
            return Veil(engine=engine, vault=RedisVault(REDIS_URL, prefix=prefix), keys=keys)

        monkeypatch.setattr(veil_server.gateway, "build_veil", build_veil)

        def dump(values: StoredValues) -> None:
            dump_redis([f"{prefix}:", f"{prefix}-limits:"], values)
            dump_sqlite(state_file, values)

        server = {"state_url": str(state_file), "redis_url": REDIS_URL, "redis_prefix": f"{prefix}-limits"}
        yield Backend("redis", {"url": REDIS_URL}, server, dump)
        next(prefixes, None)
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{prefix}-limits:*"):
            client.delete(key)
        client.close()


# -- a webhook receiver -------------------------------------------------------------------------


@dataclass
class Receiver:
    bodies: list[bytes]
    arrived: threading.Condition

    def wait_for(self, count: int) -> list[bytes]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.bodies) >= count, 20), f"{len(self.bodies)} deliveries"
            return list(self.bodies)


@contextmanager
def receiving() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver([], threading.Condition())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with receiver.arrived:
                receiver.bodies.append(body)
                receiver.arrived.notify_all()
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver, f"http://127.0.0.1:{server.server_address[1]}/hooks"
    finally:
        server.shutdown()
        server.server_close()


# -- the traffic --------------------------------------------------------------------------------


def settings(backend: Backend) -> Settings:
    return Settings(
        server={
            "keys": [{"key": key, **spec} for key, spec in KEYS.items()],
            "webhooks": {"allow_private_addresses": True, "flag_threshold": 1, "backoff_seconds": 0.1},
            "reversal": {"required_approvals": 2},
            **backend.server,
        },
        vault=backend.vault,
        policy={"ner": "auto"},  # the name is a canary too: NER on
        models={"echo": {"provider": "echo"}, "echo-embedding": {"provider": "echo", "category": "embedding"}},
    )


def auth(key: str = "sk-pii-user", **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


def ok(answer: Any, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer


def drive_every_endpoint(client: TestClient, hook_url: str) -> dict[str, Any]:
    """Every route that takes text, with the canaries; returns what proves they went through."""
    seen: dict[str, Any] = {}
    scoped = auth(**{"X-Veil-Scope": SCOPE})
    user = [{"role": "user", "content": FULL_CANARY_TEXT}]
    ok(client.post("/v1/admin/webhooks", headers=auth("sk-pii-admin-a"), json={
        "url": hook_url, "events": ["completion.done", "anonymize.flagged", "quota.exceeded"]}), 201)  # fmt: skip
    ok(client.post("/v1/admin/keys", headers=auth("sk-pii-admin-a"), json={"scopes": ["chat"], "name": "support"}))
    chat = ok(client.post("/v1/chat/completions", headers=scoped,
                          json={"model": "echo", "messages": user, "user": CANARIES["email"]})).json()  # fmt: skip
    seen["chat"] = chat["choices"][0]["message"]["content"]
    seen["chat mapping"] = chat["veil"]["mapping"]
    with client.stream(
        "POST",
        "/v1/chat/completions",
        headers=auth(),
        json={"model": "echo", "messages": user, "stream": True, "stream_options": {"include_usage": True}},
    ) as stream:
        seen["stream"] = "".join(stream.iter_text())  # fmt: skip
    history = [
        *user,
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "send_email", "arguments": json.dumps({"body": FULL_CANARY_TEXT})}}]},
        {"role": "tool", "tool_call_id": "c1", "content": json.dumps({"iban": CANARIES["iban"]})},
        {"role": "user", "content": f"Et mon RAMQ : {CANARIES['ramq']}"},
    ]  # fmt: skip
    tools = ok(client.post("/v1/chat/completions", headers=scoped,
                           json={"model": "echo", "messages": history, "tools": TOOLS})).json()  # fmt: skip
    seen["tool call"] = tools["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    with client.stream(
        "POST",
        "/v1/chat/completions",
        headers=auth(),
        json={"model": "echo", "messages": user, "tools": TOOLS, "stream": True},
    ) as stream:
        seen["tool stream"] = "".join(stream.iter_text())  # fmt: skip
    seen["plain"] = ok(client.post("/v1/chat/completions", headers=auth(), json={
        "model": "echo", "messages": user, "anonymize": False})).json()["choices"][0]["message"]["content"]  # fmt: skip
    seen["completion"] = ok(client.post("/v1/completions", headers=scoped,
                                        json={"model": "echo", "prompt": FULL_CANARY_TEXT})).json()  # fmt: skip
    with client.stream(
        "POST", "/v1/completions", headers=auth(), json={"model": "echo", "prompt": [FULL_CANARY_TEXT], "stream": True}
    ) as stream:
        seen["completion stream"] = "".join(stream.iter_text())
    ok(client.post("/v1/embeddings", headers=auth(), json={"model": "echo-embedding",
                                                           "input": [FULL_CANARY_TEXT, CANARIES["sin"]]}))  # fmt: skip
    anonymized = ok(client.post("/v1/anonymize", headers=auth(),
                                json={"text": FULL_CANARY_TEXT, "scope": SCOPE})).json()  # fmt: skip
    seen["anonymize mapping"] = anonymized["mapping"]
    extended = ok(
        client.post(
            "/v1/anonymize",
            headers=auth(),
            json={"text": f"{CANARIES['email']} et {CANARIES['card']}", "existing_mapping": anonymized["mapping"]},
        )
    ).json()
    seen["restored with a mapping"] = ok(client.put("/v1/anonymize", headers=auth(), json={
        "text": extended["anonymized_text"], "mapping": extended["mapping"]})).json()["text"]  # fmt: skip
    seen["restored from the scope"] = ok(client.put("/v1/anonymize", headers=auth(), json={
        "text": anonymized["anonymized_text"], "scope": SCOPE})).json()["text"]  # fmt: skip
    seen["scan"] = ok(client.post("/v1/anonymization/scan", headers=auth(), json={"text": FULL_CANARY_TEXT})).json()
    ok(client.post("/v1/chat/completions", headers=auth("sk-pii-limited"), json={"model": "echo", "messages": user}))
    ok(client.post("/v1/chat/completions", headers=auth("sk-pii-limited"),
                   json={"model": "echo", "messages": user}), 429)  # quota.exceeded  # fmt: skip
    request_id = ok(
        client.post(
            "/v1/approvals",
            headers=auth(),
            json={"scope": SCOPE, "reason": f"demande d'accès de {CANARIES['name']} ({CANARIES['email']})"},
        ),
        201,
    ).json()["id"]
    approvals = [ok(client.post(f"/v1/approvals/{request_id}/approve", headers=auth(admin))).json()["approval_token"]
                 for admin in ("sk-pii-admin-a", "sk-pii-admin-b")]  # fmt: skip
    listed = ok(client.get("/v1/approvals", headers=auth("sk-pii-admin-a"))).json()
    seen["approval reason"] = listed["data"][0]["reason"]
    revealed = ok(client.post("/v1/anonymization/reverse", json={"request_id": request_id},
                              headers=[("Authorization", "Bearer sk-pii-user")] +
                              [("X-Approval-Token", token) for token in approvals]))  # fmt: skip
    seen["revealed"] = revealed.json()["mapping"]
    seen["usage"] = ok(client.get("/v1/usage", headers=auth())).json()
    return seen


def bad_requests() -> list[tuple[str, str, dict[str, Any]]]:
    """Mistaken requests that carry a canary where something else belongs."""
    email, name, card = CANARIES["email"], CANARIES["name"], CANARIES["card"]
    message = [{"role": "user", "content": "Bonjour"}]
    return [
        ("POST", "/v1/anonymize", {"content": f'{{"text": "{email}'.encode(), "headers": auth()}),
        ("POST", "/v1/chat/completions", {"json": {"model": email, "messages": message}}),
        ("POST", "/v1/chat/completions", {"json": {"model": name, "messages": message}}),
        ("POST", "/v1/embeddings", {"json": {"model": card.replace(" ", ""), "input": "x"}}),
        ("GET", f"/v1/models/{email}", {}),
        ("GET", f"/v1/models/{CANARIES['sin'].replace(' ', '')}", {}),
        ("POST", "/v1/chat/completions", {"json": {"model": "echo", "messages": email}}),
        ("POST", "/v1/chat/completions", {"json": {"model": "echo", "messages": [{"role": email}]}}),
        ("POST", "/v1/anonymize", {"json": {"text": "x", email: 1}}),
        ("POST", "/v1/anonymize", {"json": {"text": "x", name: 1}}),
        ("POST", "/v1/anonymize", {"json": {"text": "x", "language": name}}),
        ("POST", "/v1/anonymize", {"json": {"text": "x", "mode": email}}),
        ("POST", "/v1/anonymize", {"json": {"text": "x", "existing_mapping": {email: "{{EMAIL_1}}"}}}),
        ("POST", "/v1/anonymize", {"json": {"text": "x", "existing_mapping": {name: 3}}}),
        ("PUT", "/v1/anonymize", {"json": {"text": "{{EMAIL_1}}", "mapping": {email: 1}}}),
        ("PUT", "/v1/anonymize", {"json": {"text": email, "scope": email, "mapping": {}}}),
        ("POST", "/v1/anonymization/scan", {"json": {"text": "x", "entities": email}}),
        (
            "POST",
            "/v1/chat/completions",
            {"json": {"model": "echo", "messages": message}, "headers": auth(**{"X-Veil-Scope": name})},
        ),
        (
            "POST",
            "/v1/chat/completions",
            {"json": {"model": "echo", "messages": message}, "headers": auth(**{"X-Anonymize-Mode": email})},
        ),
        ("POST", "/v1/chat/completions", {"json": {"model": "echo", "messages": message, "anonymize": email}}),
        ("GET", f"/v1/{email}", {}),
        ("DELETE", f"/v1/models/{name}", {}),
        ("GET", f"/v1/usage?start={email}", {}),
        ("GET", f"/v1/usage?model={email}&group_by={name}", {}),
        ("POST", "/v1/anonymization/reverse", {"json": {"request_id": email}}),
        (
            "POST",
            "/v1/anonymization/reverse",
            {"json": {"request_id": "rvl_0123"}, "headers": auth(**{"X-Approval-Token": email})},
        ),
        ("POST", f"/v1/approvals/{email}/approve", {"headers": auth("sk-pii-admin-a")}),
        ("POST", "/v1/approvals", {"json": {"scope": name, "reason": email}}),
        ("GET", f"/v1/admin/webhooks/{email}", {"headers": auth("sk-pii-admin-a")}),
        ("GET", f"/v1/admin/keys/{email}", {"headers": auth("sk-pii-admin-a")}),
        (
            "POST",
            "/v1/admin/webhooks",
            {"json": {"url": f"http://{email}/x", "events": ["completion.done"]}, "headers": auth("sk-pii-admin-a")},
        ),
        (
            "POST",
            "/v1/admin/webhooks",
            {"json": {"url": "http://127.0.0.1/x", "events": [email]}, "headers": auth("sk-pii-admin-a")},
        ),
        ("POST", "/v1/admin/keys", {"json": {"scopes": [email]}, "headers": auth("sk-pii-admin-a")}),
        (
            "POST",
            "/v1/admin/keys",
            {"json": {"scopes": ["chat"], "policy": {"entities": [name]}}, "headers": auth("sk-pii-admin-a")},
        ),
        (
            "POST",
            "/v1/chat/completions",
            {"json": {"model": "echo", "messages": message}, "headers": {"Authorization": f"Bearer {email}"}},
        ),
        ("POST", "/v1/auth/token", {"json": {"scopes": [email]}}),
    ]


def echoed_canaries(client: TestClient) -> list[str]:
    scanner, found = Scanner(), []
    for method, path, options in bad_requests():
        answer = client.request(method, path, **{"headers": auth(), **options})
        assert 400 <= answer.status_code < 500, f"{method} {path}: {answer.status_code} {answer.text}"
        found += [f"{method} {path.split('?')[0][:20]}… → {answer.status_code}: {name} ({form})"
                  for name, form in scanner.find(answer.text)]  # fmt: skip
    return found


def test_no_canary_is_stored_anywhere_on_any_backend(
    backend: Backend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    values = StoredValues()
    with receiving() as (receiver, hook_url), TestClient(create_app(settings(backend))) as client:
        seen = drive_every_endpoint(client, hook_url)
        echoed = echoed_canaries(client)
        deliveries = receiver.wait_for(4)
        metrics = client.get("/metrics").text
        dump_files(tmp_path, values, "while running:")
    backend.dump(values)
    dump_files(tmp_path, values, "after stopping:")
    for n, body in enumerate(deliveries):
        values.add(f"webhook delivery #{n}", body)
    values.add("/metrics", metrics)
    # The gateway's log records (the test client's own, which show the URLs of the bad requests, aside).
    values.add("log records", "\n".join(r.getMessage() for r in caplog.records if r.name != "httpx2"))

    # The canaries went through: the answers that return values on purpose hold them.
    assert seen["chat"] == seen["plain"] == FULL_CANARY_TEXT
    assert set(CANARIES.values()) <= set(seen["revealed"].values())
    assert CANARIES["name"] in seen["approval reason"]  # an admin reads it; at rest it is sealed
    assert {s["text"] for s in seen["scan"]["spans"]} == set(CANARIES.values())
    assert seen["restored from the scope"] == FULL_CANARY_TEXT
    assert {json.loads(body)["type"] for body in deliveries} >= {"completion.done", "anonymize.flagged",
                                                                  "quota.exceeded"}  # fmt: skip
    assert len(values.items) > 100, "the dump found (almost) nothing to scan"
    assert echoed == [], "errors repeat what the client sent:\n" + "\n".join(echoed)
    found = canaries_in(values)
    assert found == [], f"{len(found)} canary value(s) at rest on {backend.name}:\n" + "\n".join(found[:40])


# -- the core, without the server ---------------------------------------------------------------


def test_the_core_vaults_audit_and_errors_hold_no_canary(tmp_path: Path) -> None:
    veil = Veil.open(tmp_path / "vault")
    session = veil.session(SCOPE, tenant="acme", subject=CANARIES["email"])
    anonymized = session.anonymize(FULL_CANARY_TEXT)
    assert session.restore(anonymized.text) == FULL_CANARY_TEXT
    session.anonymize([{"role": "user", "content": FULL_CANARY_TEXT}])
    session.anonymize({"client": {"courriel": CANARIES["email"], "iban": CANARIES["iban"]}})
    stream = session.stream_restorer()
    assert "".join(stream.feed(c) for c in anonymized.text) + stream.flush() == FULL_CANARY_TEXT
    session.token_for("EMAIL", "jean@exemple.ca")
    other = veil.session("case-43", tenant="acme")
    other.anonymize(f"{CANARIES['phone']} {CANARIES['address']}")
    veil.rotate_keys(actor="test")
    assert set(CANARIES.values()) <= set(veil.reveal_mapping("acme", SCOPE).values())

    errors: list[BaseException] = []
    for bad in (
        lambda: session.require(CANARIES["email"]),
        lambda: session.token_for(CANARIES["email"], CANARIES["email"]),
        lambda: session.tokens_for([("EMAIL", "a@b.ca"), (CANARIES["name"], CANARIES["name"])]),
        lambda: session.anonymize("x", language=CANARIES["name"]),
        lambda: session.restore("{{EMAIL_99}}"),
    ):
        try:
            bad()
        except (VeilError, TypeError, ValueError) as exc:
            errors.append(exc)
    assert [type(e) for e in errors] == [TokenNotFound, ConfigError, ConfigError, ConfigError, TokenNotFound]

    db = next((tmp_path / "vault").glob("*.db"))
    with sqlite3.connect(db) as connection:  # two rows' ciphertexts swapped: authentication must fail
        rows = connection.execute("SELECT rowid, ciphertext FROM veil_mappings ORDER BY rowid LIMIT 2").fetchall()
        connection.execute("UPDATE veil_mappings SET ciphertext = ? WHERE rowid = ?", (rows[1][1], rows[0][0]))
    fresh = Veil.open(tmp_path / "vault").session(SCOPE, tenant="acme")
    with pytest.raises(IntegrityError) as tampered:
        fresh.restore(anonymized.text)
    errors.append(tampered.value)
    veil.erase_subject(CANARIES["email"], tenant="acme")
    veil.close()

    values = StoredValues()
    for n, exc in enumerate(errors):
        values.add(f"str() of {type(exc).__name__} #{n}", str(exc))
        values.add(f"repr() of {type(exc).__name__} #{n}", repr(exc))
    dump_files(tmp_path, values, "")
    dump_sqlite(db, values)
    found = canaries_in(values)
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("kind", ["postgresql", "redis"])
def test_the_shared_vaults_hold_no_canary(kind: str, tmp_path: Path) -> None:
    from veil.crypto.keys import LocalKeyFileProvider

    values = StoredValues()
    keys = LocalKeyFileProvider(tmp_path / "keys.json")
    if kind == "postgresql":
        from veil.vault.postgres import PostgresVault

        with postgres_database() as dsn:
            exercise(Veil(vault=PostgresVault(dsn), keys=keys))
            dump_postgres(dsn, values)
    else:
        from veil.vault.redis import RedisVault

        prefixes = redis_prefix()
        prefix = next(prefixes)
        exercise(Veil(vault=RedisVault(REDIS_URL, prefix=prefix), keys=keys))
        dump_redis([f"{prefix}:"], values)
        next(prefixes, None)
    assert len(values.items) > 10
    found = canaries_in(values)
    assert found == [], "\n".join(found)


def exercise(veil: Veil) -> None:
    session = veil.session(SCOPE, tenant="acme", subject=CANARIES["email"])
    anonymized = session.anonymize(FULL_CANARY_TEXT)
    assert session.restore(anonymized.text) == FULL_CANARY_TEXT
    session.anonymize({"client": {"courriel": CANARIES["email"], "iban": CANARIES["iban"]}})
    veil.session("case-43", tenant="acme").anonymize(f"{CANARIES['phone']} {CANARIES['address']}")
    veil.rotate_keys(actor="test")
    assert set(CANARIES.values()) <= set(veil.reveal_mapping("acme", SCOPE).values())
    veil.close()
