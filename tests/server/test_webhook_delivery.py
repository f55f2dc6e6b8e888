"""Signed webhooks end to end: a real gateway on loopback delivers to a real receiver on loopback
that verifies every delivery with veil.webhooks.verify; retries, the delivery log, restarts, SSRF
refusals and tenant isolation, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from loopback_receiver import Receiver, receiving
from server_live import closed_port, serve
from services import POSTGRES_DSN, postgres_schema
from veil_server import Settings, create_app
from veil_server.dispatcher import WebhookDispatcher, backoff
from veil_server.events import Event
from veil_server.sealing import FieldSealer
from veil_server.settings import WebhookSettings
from veil_server.state import StateDB
from veil_server.webhooks import WebhookError, WebhookStore, check_url

from veil.session import Veil

EMAIL, PHONE, SIN = "marie.tremblay@exemple.qc.ca", "+1 514 872 3456", "130 692 544"
TEXT = f"Écrivez à {EMAIL} ou appelez le {PHONE}. NAS {SIN}."
KEYS = {
    "sk-admin": {"name": "admin", "scopes": ["admin"]},
    "sk-chat": {"name": "chat", "scopes": ["chat", "anonymize"], "policy": {"flag_threshold": 3}},
    "sk-other-admin": {"name": "other-admin", "tenant": "other", "scopes": ["admin"]},
}


def settings(**webhooks: Any) -> Settings:
    options = {"allow_private_addresses": True, "backoff_seconds": 0.05, "poll_seconds": 0.2, "max_attempts": 4,
               "timeout": 2.0, **webhooks}  # fmt: skip
    return Settings(
        server={"keys": [{"key": key, **spec} for key, spec in KEYS.items()], "webhooks": options},
        vault={"url": "memory"},
        policy={"ner": "off"},
    )


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll a condition of the server's state (the delivery log) until it holds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached"
        threading.Event().wait(0.02)


def subscribe(base: str, url: str, events: list[str], key: str = "sk-admin") -> dict[str, Any]:
    answer = httpx.post(f"{base}/v1/admin/webhooks", json={"url": url, "events": events}, headers=auth(key))
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def deliveries(base: str, subscription: str, key: str = "sk-admin") -> list[dict[str, Any]]:
    answer = httpx.get(f"{base}/v1/admin/webhooks/{subscription}/deliveries", headers=auth(key))
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


def test_a_flagged_request_is_delivered_signed_retried_after_a_500_and_logged(state: StateDB) -> None:
    receiver = Receiver(statuses=[500])
    with receiving(receiver) as hook_url, serve(create_app(settings(), state=state)) as base:
        created = subscribe(base, f"{hook_url}/hooks", ["anonymize.flagged"])
        receiver.secret = created["secret"]
        assert created["secret"].startswith("whsec_")
        answer = httpx.post(f"{base}/v1/chat/completions", headers=auth("sk-chat"),
                            json={"model": "echo", "messages": [{"role": "user", "content": TEXT}]})  # fmt: skip
        assert answer.status_code == 200 and answer.json()["veil"]["pii_count"] == 3

        first, second = receiver.wait_for(2)
        assert first.verified and second.verified
        assert first.headers["x-veil-event"] == "anonymize.flagged"
        assert first.headers["x-veil-delivery"] == second.headers["x-veil-delivery"]  # one delivery, retried
        event = json.loads(second.body)
        assert event["type"] == "anonymize.flagged" and event["tenant"] == "default"
        assert event["data"]["key_id"] == "chat" and event["data"]["pii_count"] == 3
        assert event["data"]["pii_types"] == {"CA_SIN": 1, "EMAIL": 1, "PHONE": 1}
        # Fragments long enough that a random id cannot contain them by chance ("514" alone once did).
        for value in (EMAIL, PHONE, SIN, "marie", "514 872", "5148723456", "130692544"):
            assert value not in second.body.decode()

        log = until(lambda: [d for d in deliveries(base, created["id"]) if d["status"] == "delivered"])
        assert len(log) == 1
        entry = log[0]
        assert entry["attempts"] == 2 and entry["last_status_code"] == 200 and entry["next_attempt"] is None
        retried, delivered = entry["log"]
        assert (retried["status_code"], delivered["status_code"]) == (500, 200)
        assert retried["latency_ms"] >= 0 and delivered["next_attempt"] is None
        # Backoff with jitter: the first retry is due between half and all of the base delay.
        wait = retried["next_attempt"] - retried["time"]
        assert 0.025 <= wait <= 0.05
        assert "body" not in entry and EMAIL not in json.dumps(log)
        metrics = httpx.get(f"{base}/metrics").text
        assert 'veil_webhook_attempts_total{outcome="retry"} 1.0' in metrics
        assert 'veil_webhook_attempts_total{outcome="delivered"} 1.0' in metrics


def test_below_the_threshold_nothing_is_flagged(state: StateDB) -> None:
    receiver = Receiver()
    with receiving(receiver) as hook_url, serve(create_app(settings(), state=state)) as base:
        created = subscribe(base, hook_url, ["anonymize.flagged"])
        receiver.secret = created["secret"]
        httpx.post(f"{base}/v1/anonymize", json={"text": f"écrivez à {EMAIL}"}, headers=auth("sk-chat"))
        ping = httpx.post(f"{base}/v1/admin/webhooks/{created['id']}/ping", headers=auth("sk-admin"))
        assert ping.status_code == 202
        (only,) = receiver.wait_for(1)
        assert json.loads(only.body)["type"] == "webhook.ping" and only.verified


def test_a_receiver_that_keeps_failing_is_given_up_after_max_attempts(state: StateDB) -> None:
    receiver = Receiver(statuses=[503, 502, 500, 500, 500])
    with receiving(receiver) as hook_url, serve(create_app(settings(max_attempts=3), state=state)) as base:
        created = subscribe(base, hook_url, ["anonymize.flagged"])
        receiver.secret = created["secret"]
        httpx.post(f"{base}/v1/admin/webhooks/{created['id']}/ping", headers=auth("sk-admin"))
        log = until(lambda: [d for d in deliveries(base, created["id"]) if d["status"] == "failed"])
        assert log[0]["attempts"] == 3 and log[0]["last_error"] == "gave_up"
        assert [a["status_code"] for a in log[0]["log"]] == [503, 502, 500]
        assert len(receiver.received) == 3


def test_a_4xx_answer_is_not_retried_and_a_dead_receiver_is_a_network_error(state: StateDB) -> None:
    receiver = Receiver(statuses=[410])
    with receiving(receiver) as hook_url, serve(create_app(settings(max_attempts=2), state=state)) as base:
        gone = subscribe(base, hook_url, ["anonymize.flagged"])
        receiver.secret = gone["secret"]
        dead = subscribe(base, f"http://127.0.0.1:{closed_port()}/hook", ["anonymize.flagged"])
        for subscription in (gone, dead):
            httpx.post(f"{base}/v1/admin/webhooks/{subscription['id']}/ping", headers=auth("sk-admin"))
        refused = until(lambda: [d for d in deliveries(base, gone["id"]) if d["status"] == "failed"])[0]
        assert refused["attempts"] == 1 and refused["last_status_code"] == 410 and refused["last_error"] == "refused"
        unreachable = until(lambda: [d for d in deliveries(base, dead["id"]) if d["status"] == "failed"])[0]
        assert unreachable["attempts"] == 2 and unreachable["last_status_code"] is None
        assert unreachable["last_error"].startswith("network:")


def test_a_secret_sealed_under_a_lost_key_is_never_sent_unsigned(state: StateDB) -> None:
    receiver = Receiver()
    with receiving(receiver) as hook_url:
        with serve(create_app(settings(), state=state)) as base:
            created = subscribe(base, hook_url, ["quota.exceeded"])
        # A new process with an in-memory vault: the key that sealed the secret is gone.
        app = create_app(settings(), state=state)
        app.state.gateway.webhooks.store.fan_out([Event("quota.exceeded", "default", {"key_id": "chat"})])
        with serve(app) as base:
            log = until(lambda: [d for d in deliveries(base, created["id"]) if d["status"] == "failed"])
    assert log[0]["last_error"] == "secret_unreadable" and receiver.received == []


def test_a_restarted_gateway_with_a_persistent_vault_sends_what_was_left_pending(
    state: StateDB, tmp_path: Path
) -> None:
    receiver = Receiver()
    vault_settings = settings().model_copy(update={"vault": settings().vault.model_copy(update={"url": str(tmp_path)})})
    with receiving(receiver) as hook_url:
        first = create_app(vault_settings, state=state)
        store = first.state.gateway.webhooks.store
        _, secret = store.create("default", hook_url, ["quota.exceeded"])
        receiver.secret = secret
        store.fan_out([Event("quota.exceeded", "default", {"key_id": "chat"})])
        first.state.gateway.veil.close()
        with serve(create_app(vault_settings, state=state)):  # a new process: same state, same key file
            (delivered,) = receiver.wait_for(1)
        assert delivered.verified and json.loads(delivered.body)["type"] == "quota.exceeded"


def test_admin_endpoints_are_tenant_bound_and_show_the_secret_once(state: StateDB) -> None:
    with serve(create_app(settings(), state=state)) as base:
        created = subscribe(base, "https://hooks.example.com/veil", ["completion.done", "quota.exceeded"])
        sid = created["id"]
        listed = httpx.get(f"{base}/v1/admin/webhooks", headers=auth("sk-admin")).json()["data"]
        assert [s["id"] for s in listed] == [sid] and "secret" not in listed[0]
        assert "secret" not in httpx.get(f"{base}/v1/admin/webhooks/{sid}", headers=auth("sk-admin")).json()
        with state.transaction() as tx:
            (stored,) = tx.fetchone("SELECT secret FROM webhook_subscriptions WHERE id = ?", (sid,)) or ("",)
        assert created["secret"] not in stored and created["secret"][6:] not in stored
        # Another tenant's admin, and a key without the admin scope.
        other = auth("sk-other-admin")
        assert httpx.get(f"{base}/v1/admin/webhooks", headers=other).json()["data"] == []
        for method, path in (("GET", ""), ("DELETE", ""), ("GET", "/deliveries"), ("POST", "/ping")):
            answer = httpx.request(method, f"{base}/v1/admin/webhooks/{sid}{path}", headers=other)
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "webhook_not_found"
        answer = httpx.get(f"{base}/v1/admin/webhooks", headers=auth("sk-chat"))
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "insufficient_scope"
        assert httpx.delete(f"{base}/v1/admin/webhooks/{sid}", headers=auth("sk-admin")).json()["deleted"] is True
        assert httpx.get(f"{base}/v1/admin/webhooks/{sid}", headers=auth("sk-admin")).status_code == 404


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "ftp://hooks.example.com/x", "events": ["completion.done"]}, "invalid_webhook_url"),
        ({"url": "https://user:pw@hooks.example.com/x", "events": ["completion.done"]}, "invalid_webhook_url"),
        ({"url": "http://10.0.0.8/hook", "events": ["completion.done"]}, "invalid_webhook_url"),
        ({"url": "http://[::1]:8080/hook", "events": ["completion.done"]}, "invalid_webhook_url"),
        ({"url": "http://localhost:8080/hook", "events": ["completion.done"]}, "invalid_webhook_url"),
        ({"url": "https://hooks.example.com/x", "events": ["secrets.leaked"]}, "invalid_webhook"),
        ({"url": "https://hooks.example.com/x", "events": []}, "invalid_request"),
        ({"url": "https://hooks.example.com/x"}, "invalid_request"),
    ],
)
def test_bad_subscriptions_are_refused_clearly(body: dict[str, Any], code: str, tmp_path: Path) -> None:
    state = StateDB(str(tmp_path / "server.db"))
    with serve(create_app(settings(allow_private_addresses=False), state=state)) as base:
        answer = httpx.post(f"{base}/v1/admin/webhooks", json=body, headers=auth("sk-admin"))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == code


def test_a_name_resolving_to_loopback_is_refused_at_delivery_time(tmp_path: Path) -> None:
    """`localhost` is refused by name at creation; any other name may still resolve inward: the
    dispatcher resolves before each attempt and refuses non-public addresses."""
    receiver = Receiver()
    state = StateDB(str(tmp_path / "server.db"))
    app = create_app(settings(allow_private_addresses=False), state=state)
    with receiving(receiver) as hook_url:
        port = hook_url.rsplit(":", 1)[1]
        store = app.state.gateway.webhooks.store
        subscription, _ = store.create("default", f"http://localhost:{port}/", ["quota.exceeded"])
        store.fan_out([Event("quota.exceeded", "default", {"key_id": "chat"})])
        with serve(app) as base:
            log = until(lambda: [d for d in deliveries(base, subscription.id) if d["status"] == "failed"])
    assert log[0]["last_error"] == "address_refused" and receiver.received == []


def test_check_url_accepts_public_https_and_http() -> None:
    assert check_url("https://hooks.example.com/veil?x=1", allow_private=False)
    assert check_url("http://203.0.113.0/hook", allow_private=True)
    with pytest.raises(WebhookError, match="private"):
        check_url("http://192.168.1.10/hook", allow_private=False)
    with pytest.raises(WebhookError, match="private"):
        check_url("http://[::ffff:127.0.0.1]/hook", allow_private=False)


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        delay = min(60.0, 2.0 * 2 ** (attempt - 1))
        for _ in range(20):
            assert delay / 2 <= backoff(attempt, base=2.0, cap=60.0, rng=rng) <= delay


def test_emit_never_blocks_nor_raises_and_counts_what_it_drops(tmp_path: Path) -> None:
    state = StateDB(str(tmp_path / "server.db"))
    store = WebhookStore(state, FieldSealer(Veil().keyring))
    dispatcher = WebhookDispatcher(store, WebhookSettings(queue_size=2))
    for _ in range(5):
        dispatcher.emit(Event("completion.done", "default", {"key_id": "chat"}))
    assert dispatcher.dropped == 3
    state.close()


def test_two_dispatchers_never_claim_the_same_delivery(state: StateDB) -> None:
    store = WebhookStore(state, FieldSealer(Veil().keyring))
    store.create("default", "https://hooks.example.com/a", ["completion.done"])
    store.fan_out([Event("completion.done", "default", {"n": n}) for n in range(40)], now=100.0)
    claims: dict[str, list[str]] = {"a": [], "b": []}

    def claim(owner: str) -> None:
        while batch := store.claim_due(owner, limit=3, lease=60.0, now=101.0):
            claims[owner] += [d.id for d in batch]

    threads = [threading.Thread(target=claim, args=(owner,)) for owner in claims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claims["a"]) + len(claims["b"]) == 40
    assert not set(claims["a"]) & set(claims["b"])
    # A lease that ran out (its process died mid-attempt) is claimed again.
    assert len(store.claim_due("c", limit=100, lease=60.0, now=200.0)) == 40


def test_an_unreachable_state_database_is_503_for_the_admin_api() -> None:
    schemas = postgres_schema()
    state = StateDB(POSTGRES_DSN, schema=next(schemas))
    try:
        with serve(create_app(settings(), state=state)) as base:
            assert httpx.get(f"{base}/v1/admin/webhooks", headers=auth("sk-admin")).status_code == 200
            state.close()  # the database goes away
            answer = httpx.post(f"{base}/v1/admin/webhooks", headers=auth("sk-admin"),
                                json={"url": "https://hooks.example.com/x", "events": ["completion.done"]})  # fmt: skip
            assert answer.status_code == 503 and answer.json()["error"]["code"] == "state_unavailable"
            # Requests that emit events still succeed: delivery is never on the request's path.
            chat = httpx.post(f"{base}/v1/chat/completions", headers=auth("sk-chat"),
                              json={"model": "echo", "messages": [{"role": "user", "content": TEXT}]})  # fmt: skip
            assert chat.status_code == 200
    finally:
        next(schemas, None)


def test_a_rotated_secret_signs_alongside_the_old_one_for_the_grace_period(state: StateDB) -> None:
    receiver = Receiver()
    with receiving(receiver) as hook_url, serve(create_app(settings(), state=state)) as base:
        created = subscribe(base, hook_url, ["quota.exceeded"])
        sid, old = created["id"], created["secret"]
        rotated = call_rotate(base, sid, {})
        new = rotated["secret"]
        assert new != old and new.startswith("whsec_") and rotated["previous_secret_expires"] > time.time()
        assert "secret" not in httpx.get(f"{base}/v1/admin/webhooks/{sid}", headers=auth("sk-admin")).json()
        receiver.secret = old  # a receiver not yet switched
        httpx.post(f"{base}/v1/admin/webhooks/{sid}/ping", headers=auth("sk-admin"))
        first = receiver.wait_for(1)[0]
        assert first.verified and first.headers["x-veil-signature"].count("v1=") == 2
        receiver.secret = new  # switched
        httpx.post(f"{base}/v1/admin/webhooks/{sid}/ping", headers=auth("sk-admin"))
        assert receiver.wait_for(2)[1].verified
        # Rotated again with no grace: only the newest secret signs.
        newest = call_rotate(base, sid, {"grace_seconds": 0})["secret"]
        httpx.post(f"{base}/v1/admin/webhooks/{sid}/ping", headers=auth("sk-admin"))
        third = receiver.wait_for(3)[2]
        assert third.refusal == "mismatch" and third.headers["x-veil-signature"].count("v1=") == 1
        receiver.secret = newest
        other = httpx.post(f"{base}/v1/admin/webhooks/{sid}/rotate-secret", headers=auth("sk-other-admin"))
        assert other.status_code == 404


def call_rotate(base: str, sid: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{base}/v1/admin/webhooks/{sid}/rotate-secret", json=body, headers=auth("sk-admin"))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_a_streamed_request_is_flagged_and_a_429_retry_after_is_honoured(state: StateDB) -> None:
    receiver = Receiver(statuses=[429], retry_after="1")
    with receiving(receiver) as hook_url, serve(create_app(settings(), state=state)) as base:
        created = subscribe(base, hook_url, ["anonymize.flagged"])
        receiver.secret = created["secret"]
        with httpx.stream("POST", f"{base}/v1/chat/completions", headers=auth("sk-chat"),
                          json={"model": "echo", "stream": True,
                                "messages": [{"role": "user", "content": TEXT}]}) as answer:  # fmt: skip
            assert answer.status_code == 200
            assert "[DONE]" in "".join(answer.iter_text())
        throttled_copy, second = receiver.wait_for(2)
        assert throttled_copy.body == second.body  # the same delivery, retried
        assert json.loads(second.body)["data"]["endpoint"] == "/v1/chat/completions"
        log = until(lambda: [d for d in deliveries(base, created["id"]) if d["status"] == "delivered"])[0]
        throttled = log["log"][0]
        assert throttled["status_code"] == 429
        assert throttled["next_attempt"] - throttled["time"] >= 1.0  # Retry-After, not the 0.05 s backoff


def test_finished_deliveries_are_pruned_after_the_retention(state: StateDB) -> None:
    store = WebhookStore(state, FieldSealer(Veil().keyring))
    store.create("default", "https://hooks.example.com/a", ["completion.done"])
    store.fan_out([Event("completion.done", "default", {"n": n}) for n in range(3)], now=100.0)
    claimed = store.claim_due("me", limit=10, lease=60.0, now=100.0)
    for delivery, status in zip(claimed, ("delivered", "failed", "pending"), strict=True):
        store.record_attempt(delivery, "me", status=status, status_code=200, error=None, latency_ms=1.0,
                             next_attempt=500.0 if status == "pending" else None, now=110.0)  # fmt: skip
    assert store.prune(older_than=105.0) == 0
    assert store.prune(older_than=200.0) == 2  # the pending one stays
    with state.transaction() as tx:
        assert tx.fetchone("SELECT COUNT(*) FROM webhook_attempts") == (1,)
        assert tx.fetchone("SELECT status FROM webhook_deliveries") == ("pending",)


def _pinned(addresses: list[str], url: str) -> tuple[str, str | None, dict[str, Any]] | str:
    """The dispatcher's target for `url` when DNS answers `addresses` (the resolver is the fake here)."""
    import asyncio
    import socket

    from veil_server.dispatcher import AddressRefused

    async def run() -> tuple[str, str | None, dict[str, Any]] | str:
        loop = asyncio.get_running_loop()

        async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                    for a in addresses]  # fmt: skip

        loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign,assignment]
        dispatcher = WebhookDispatcher.__new__(WebhookDispatcher)
        dispatcher.settings = WebhookSettings(allow_private_addresses=False)
        dispatcher._loop = loop
        try:
            return await dispatcher._target(url)
        except AddressRefused:
            return "refused"

    return asyncio.run(run())


def test_a_public_name_is_pinned_to_the_address_checked_and_a_rebinding_one_is_refused() -> None:
    url, host, extensions = _pinned(["93.184.215.14"], "https://hooks.example.com:8443/veil?x=1")
    assert url == "https://93.184.215.14:8443/veil?x=1"
    assert host == "hooks.example.com:8443" and extensions == {"sni_hostname": "hooks.example.com"}
    url, host, extensions = _pinned(["2606:2800:21f:cb07:6820:80da:af6b:8b2c"], "http://hooks.example.com/v")
    assert url == "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/v" and host == "hooks.example.com"
    assert extensions == {}
    for answer in (["93.184.215.14", "10.0.0.5"], ["169.254.169.254"], ["::1"], ["::ffff:127.0.0.1"], []):
        assert _pinned(answer, "https://hooks.example.com/veil") == "refused"


def test_stop_ends_the_dispatcher_even_when_it_is_woken_at_that_moment(tmp_path: Path) -> None:
    # Regression: the loop waited with asyncio.wait_for, which on Python 3.11 swallows a
    # cancellation that arrives together with the wake-up (the waited event set in the same turn):
    # the loop went on, and stop() (the gateway's shutdown) waited for it forever.
    import asyncio

    state = StateDB(str(tmp_path / "server.db"))
    store = WebhookStore(state, FieldSealer(Veil().keyring))

    async def run() -> None:
        for _ in range(20):
            dispatcher = WebhookDispatcher(store, WebhookSettings())
            await dispatcher.start()
            while not dispatcher._wake._waiters:  # type: ignore[union-attr]  # until it waits to be woken
                await asyncio.sleep(0.001)
            dispatcher.wake()
            await dispatcher.stop()

    # In a thread of its own, so that a dispatcher that never stops fails the test, not the run.
    done = threading.Event()
    thread = threading.Thread(target=lambda: (asyncio.run(run()), done.set()), daemon=True)
    thread.start()
    thread.join(30)
    assert done.is_set(), "stop() did not end the dispatcher"
    state.close()
