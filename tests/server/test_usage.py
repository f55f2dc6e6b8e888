"""Usage accounting: one row per answered request (unary, streamed, or left by the client), with the
upstream's tokens priced by the model's price; `GET /v1/usage` shows a tenant its own usage only;
`completion.done` carries ids and counts, never content; a state database outage refuses new
requests (503) and loses no row."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_setup import CANARIES, CANARY_TEXT
from metering import PRICE, RecordedEvents, metered_settings, proxied
from server_live import RecordingUpstream, read_body, serve
from services import POSTGRES_DSN, postgres_database, postgres_schema
from veil_server import create_app
from veil_server.state import StateDB
from veil_server.usage import UsageQuery, UsageRecord, UsageStore

CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": CANARY_TEXT}]}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def metered(upstream_server: tuple[RecordingUpstream, str], tmp_path: Path) -> Iterator[tuple[str, RecordedEvents]]:
    """A metered gateway on loopback (usage in a fresh SQLite file); yields (base URL, its events)."""
    upstream, upstream_url = upstream_server
    upstream.clear()
    app = create_app(metered_settings(upstream_url, str(tmp_path / "server.db")))
    events = RecordedEvents()
    app.state.gateway.events = events
    with serve(app) as url:
        yield url, events


def usage(url: str, key: str = "sk-usage", **params: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/v1/usage", params=params, headers=auth(key), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def expected_cost(prompt: int, completion: int) -> float:
    return (prompt * PRICE["input"] + completion * PRICE["output"]) / 1e6


def test_an_answered_request_is_one_usage_row_priced_from_the_upstream_tokens(
    metered: tuple[str, RecordedEvents],
) -> None:
    url, events = metered
    response = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth("sk-usage"), timeout=10)
    assert response.status_code == 200
    tokens = response.json()["usage"]
    request_id = response.headers["x-request-id"]
    report = usage(url, group_by="model,endpoint")
    assert report["tenant"] == "default"
    assert report["data"] == [{
        "object": "usage.bucket", "day": None, "model": "gpt-test", "endpoint": "/v1/chat/completions",
        "key_id": None, "requests": 1, "prompt_tokens": tokens["prompt_tokens"],
        "completion_tokens": tokens["completion_tokens"], "total_tokens": tokens["total_tokens"],
        "cost_usd": pytest.approx(expected_cost(tokens["prompt_tokens"], tokens["completion_tokens"])),
    }]  # fmt: skip
    (done,) = events.named("completion.done")
    assert done.tenant == "default"
    assert done.data["request_id"] == request_id and done.data["outcome"] == "completed"
    assert done.data["prompt_tokens"] == tokens["prompt_tokens"]
    serialized = json.dumps(done.to_dict())
    assert not any(value in serialized for value in CANARIES.values())  # ids and counts, never content


def test_a_stream_is_counted_with_the_usage_the_client_did_not_ask_for(
    metered: tuple[str, RecordedEvents], upstream_server: tuple[RecordingUpstream, str]
) -> None:
    url, events = metered
    upstream, _ = upstream_server
    unary = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth("sk-usage"), timeout=10).json()
    with httpx.stream("POST", f"{url}/v1/chat/completions", json={**CHAT, "stream": True},
                      headers=auth("sk-usage"), timeout=10) as response:  # fmt: skip
        text = response.read().decode()
    assert upstream.requests[-1].json()["stream_options"] == {"include_usage": True}  # asked upstream
    payloads = [json.loads(block[6:]) for block in text.split("\n\n") if block and block != "data: [DONE]"]
    assert all("usage" not in payload for payload in payloads)  # …and not shown to the client
    assert payloads[-1]["choices"][0]["finish_reason"] == "stop" and "veil" in payloads[-1]
    streamed = events.wait("completion.done", 2)[-1].data
    assert (streamed["prompt_tokens"], streamed["completion_tokens"]) == (
        unary["usage"]["prompt_tokens"], unary["usage"]["completion_tokens"],
    )  # fmt: skip
    assert usage(url)["total"]["requests"] == 2


def test_a_client_that_asked_for_usage_still_gets_its_usage_chunk(metered: tuple[str, RecordedEvents]) -> None:
    url, events = metered
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=auth("sk-usage"),
                      timeout=10) as response:  # fmt: skip
        text = response.read().decode()
    last = json.loads(text.split("\n\n")[-3][6:])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] > 0
    assert events.wait("completion.done")[0].data["completion_tokens"] == last["usage"]["completion_tokens"]


def test_a_stream_the_client_leaves_is_counted_as_cancelled_with_what_was_used(
    metered: tuple[str, RecordedEvents], upstream_server: tuple[RecordingUpstream, str]
) -> None:
    url, events = metered
    upstream, _ = upstream_server
    body = {"model": "stall", "messages": [{"role": "user", "content": "Bonjour"}], "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=auth("sk-usage"),
                      timeout=10) as response:  # fmt: skip
        first = next(response.iter_raw())
        assert b"Bonjour" in first
    assert upstream.disconnect_seen.wait(10)
    (done,) = events.wait("completion.done")
    assert done.data["outcome"] == "cancelled"
    # The upstream reported no usage before the client left: an estimate (4 characters a token).
    assert done.data["prompt_tokens"] > 0 and done.data["completion_tokens"] == 2
    assert usage(url, model="stall")["total"]["requests"] == 1


def test_anonymize_and_scan_are_counted_without_a_model(metered: tuple[str, RecordedEvents]) -> None:
    url, events = metered
    for path in ("/v1/anonymize", "/v1/anonymization/scan"):
        response = httpx.post(f"{url}{path}", json={"text": CANARY_TEXT}, headers=auth("sk-usage"), timeout=10)
        assert response.status_code == 200 and response.headers["x-request-id"].startswith("req_")
    report = usage(url, group_by="endpoint")
    assert [(b["endpoint"], b["requests"], b["total_tokens"]) for b in report["data"]] == [
        ("/v1/anonymization/scan", 1, 0), ("/v1/anonymize", 1, 0),
    ]  # fmt: skip
    assert events.named("completion.done") == []  # no model was called


def test_usage_filters_and_tenant_isolation(metered: tuple[str, RecordedEvents]) -> None:
    url, _ = metered
    for key in ("sk-usage", "sk-usage", "sk-other"):
        assert httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth(key), timeout=10).status_code == 200
    httpx.post(f"{url}/v1/embeddings", json={"model": "embed-test", "input": "a b c"}, headers=auth("sk-usage"))
    assert usage(url)["total"]["requests"] == 3
    assert usage(url, "sk-other")["total"]["requests"] == 1  # its own tenant's only
    assert usage(url, "sk-other", key_id="sk-usage")["total"]["requests"] == 0  # not even by naming a key
    assert usage(url, model="embed-test")["total"]["requests"] == 1
    assert usage(url, endpoint="/v1/chat/completions")["total"]["requests"] == 2
    by_key = usage(url, group_by="key_id,day")["data"]
    assert [(b["key_id"], b["requests"]) for b in by_key] == [("sk-usage", 3)]
    assert usage(url, start="2020-01-01", end="2020-12-31")["total"]["requests"] == 0
    for params, param in (({"start": "yesterday"}, "start"), ({"group_by": "text"}, "group_by"),
                          ({"start": "2026-02-01", "end": "2026-01-01"}, "end")):  # fmt: skip
        refused = httpx.get(f"{url}/v1/usage", params=params, headers=auth("sk-usage"))
        assert refused.status_code == 400 and refused.json()["error"]["param"] == param
    forbidden = httpx.get(f"{url}/v1/usage", headers=auth("sk-no-usage-scope"))
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "insufficient_scope"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UsageStore]:
    if request.param == "sqlite":
        state = StateDB(str(tmp_path / "server.db"))
        yield UsageStore(state)
        state.close()
        return
    schemas = postgres_schema()
    state = StateDB(POSTGRES_DSN, schema=next(schemas))
    yield UsageStore(state)
    state.close()
    next(schemas, None)


def test_a_request_recorded_twice_is_stored_once(store: UsageStore) -> None:
    record = UsageRecord("req_1", "t", "k", "bucket", "m", "/v1/chat/completions", 10, 5, 1500)
    assert store.record([record]) == 1
    assert store.record([record, UsageRecord("req_2", "t", "k", "bucket", "m", "/v1/embeddings", 3)]) == 1
    today = __import__("datetime").date.today()
    (total,) = store.query(UsageQuery("t", today.replace(day=1), today))
    assert (total["requests"], total["prompt_tokens"], total["cost_usd"]) == (2, 13, 1500 / 1e9)
    assert store.month_spend("bucket") == 1500


def test_a_postgresql_outage_refuses_new_requests_and_loses_no_usage(
    upstream_server: tuple[RecordingUpstream, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("CRITICAL", "psycopg.pool")  # its reconnection attempts, expected here
    _, upstream_url = upstream_server
    port = int(POSTGRES_DSN.rsplit(":", 1)[1].split("/")[0])
    with postgres_database() as database, proxied(port) as proxy:
        state_url = database.replace(f":{port}/", f":{proxy.port}/")
        with serve(create_app(metered_settings(upstream_url, state_url))) as url:

            def chat() -> httpx.Response:
                return httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth("sk-usage"), timeout=30)

            assert chat().status_code == 200
            proxy.cut()  # PostgreSQL goes away
            # Requests admitted before the writer finds out are answered (their rows stay queued);
            # from then on every request is refused with 503 until the database is back.
            answered = 1
            deadline = time.monotonic() + 60  # the writer notices at its next flush (later on a loaded machine)
            while time.monotonic() < deadline:
                response = chat()
                if response.status_code != 200:
                    break
                answered += 1
                time.sleep(0.02)
            assert response.status_code == 503 and response.json()["error"]["code"] == "state_unavailable"
            assert response.headers["Retry-After"] == "1"
            assert chat().status_code == 503
            proxy.restore()  # PostgreSQL is back: clients retrying after Retry-After get through
            retries = [chat() for _ in range(8)]
            answered += sum(1 for r in retries if r.status_code == 200)
            assert retries[-1].status_code == 200, [r.json() for r in retries]
            assert all(r.json()["error"]["code"] == "state_unavailable" for r in retries if r.status_code != 200)
            # Every answered request counted, once; the refused ones not at all. Nothing was lost.
            assert usage(url)["total"]["requests"] == answered


def test_the_usage_endpoint_is_in_the_openapi_schema_without_a_422(metered: tuple[str, RecordedEvents]) -> None:
    url, _ = metered
    operation = httpx.get(f"{url}/openapi.json").json()["paths"]["/v1/usage"]["get"]
    assert {"start", "end", "model", "endpoint", "key_id", "group_by"} <= {p["name"] for p in operation["parameters"]}
    assert "422" not in operation["responses"]


def test_an_answer_leaves_the_gateway_only_once_its_usage_row_is_stored(
    upstream_server: tuple[RecordingUpstream, str], tmp_path: Path
) -> None:
    """Found by the load test with faults (tests/reliability/test_load_faults.py): rows were stored
    by a writer 50 ms after the answer, so a replica killed (SIGKILL) in between lost the usage of
    requests its clients had seen complete. Now the row is committed before a unary answer starts
    and before a stream's `data: [DONE]`."""
    _, upstream_url = upstream_server
    state = StateDB(str(tmp_path / "server.db"))
    app = create_app(metered_settings(upstream_url, "memory"), state=state)
    seen: list[tuple[str, bool]] = []

    def stored(request_id: str) -> bool:
        with state.read() as tx:
            return tx.fetchone("SELECT 1 FROM usage_requests WHERE request_id = ?", (request_id,)) is not None

    async def watched(scope: Any, receive: Any, send: Any) -> None:
        """The gateway, with a look at the usage table at the moment each answer goes out."""
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        body = await read_body(receive)
        streaming = json.loads(body).get("stream") is True
        request_id = ""

        async def look(message: Any) -> None:
            nonlocal request_id
            if message["type"] == "http.response.start":
                request_id = dict(message["headers"])[b"x-request-id"].decode()
                if not streaming:  # a stream starts before its answer is known: its end is what counts
                    seen.append(("start", stored(request_id)))
            elif b"data: [DONE]" in message.get("body", b""):
                seen.append(("[DONE]", stored(request_id)))
            await send(message)

        replayed = iter([{"type": "http.request", "body": body, "more_body": False}])
        await app(scope, lambda: _next_or_wait(replayed, receive), look)

    with serve(watched) as url:
        unary = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth("sk-usage"), timeout=30)
        streamed = httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth("sk-usage"),
                              timeout=30)  # fmt: skip
        anonymized = httpx.post(f"{url}/v1/anonymize", json={"text": CANARY_TEXT}, headers=auth("sk-usage"), timeout=30)
    assert unary.status_code == streamed.status_code == anonymized.status_code == 200
    assert "data: [DONE]" in streamed.text
    assert seen == [("start", True), ("[DONE]", True), ("start", True)]
    state.close()


async def _next_or_wait(replayed: Iterator[Any], receive: Any) -> Any:
    for message in replayed:
        return message
    return await receive()
