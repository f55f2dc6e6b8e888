"""Limits over HTTP: OpenAI's rate-limit headers, 429 bodies the SDKs understand, budgets from the
upstream's tokens, one `quota.exceeded` per window, exactly N admitted out of 200 concurrent
requests on one replica (in-process and Redis), and Redis down refuses (503) instead of admitting."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from gateway_setup import sha256
from metering import RecordedEvents, metered_settings
from pydantic import ValidationError
from server_live import RecordingUpstream, closed_port, serve
from services import REDIS_URL, redis_prefix
from veil_server import Settings, create_app

CHAT = {"model": "echo", "messages": [{"role": "user", "content": "Bonjour"}]}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def upstream_url(upstream_server: tuple[RecordingUpstream, str]) -> str:
    return upstream_server[1]


@pytest.fixture
def metered(upstream_url: str, tmp_path: Path) -> Iterator[tuple[str, RecordedEvents]]:
    app = create_app(metered_settings(upstream_url, str(tmp_path / "server.db")))
    events = RecordedEvents()
    app.state.gateway.events = events
    with serve(app) as url:
        yield url, events


def test_limited_keys_get_openai_rate_limit_headers_then_a_429(metered: tuple[str, RecordedEvents]) -> None:
    url, events = metered
    answers = [httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth("sk-limited")) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["x-ratelimit-limit-requests"] for a in answers] == ["2", "2", "2"]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["1", "0", "0"]
    assert answers[0].headers["x-ratelimit-reset-requests"] == "1m0s"
    error = answers[2].json()["error"]
    assert (error["code"], error["type"], error["param"]) == ("rate_limit_exceeded", "requests", None)
    assert error["message"].startswith("Rate limit reached for requests per minute (RPM): Limit 2")
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-limited", max_retries=0)
    with sdk, pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert raised.value.code == "rate_limit_exceeded"
    (event,) = events.named("quota.exceeded")  # one per key and window, not one per refusal
    assert event.data == {"key_id": "sk-limited", "limit": "requests_per_minute", "limit_value": 2,
                          "endpoint": "/v1/chat/completions", "retry_after": event.data["retry_after"]}  # fmt: skip
    unlimited = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth("sk-usage"))
    assert unlimited.status_code == 200 and "x-ratelimit-limit-requests" not in unlimited.headers


def test_a_budget_is_spent_by_the_upstream_tokens_then_refuses(metered: tuple[str, RecordedEvents]) -> None:
    url, events = metered
    paid = {**CHAT, "model": "gpt-test"}
    first = httpx.post(f"{url}/v1/chat/completions", json=paid, headers=auth("sk-budget"))
    assert first.status_code == 200  # $0.000001 budget: one paid request spends more than that
    refused = httpx.post(f"{url}/v1/chat/completions", json=paid, headers=auth("sk-budget"))
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["code"], error["type"]) == ("budget_exceeded", "insufficient_quota")
    assert int(refused.headers["Retry-After"]) >= 1
    assert events.named("quota.exceeded")[0].data["limit"] == "monthly_budget"
    spent = httpx.get(f"{url}/v1/usage", headers=auth("sk-budget")).json()["total"]
    assert spent["requests"] == 1 and spent["cost_usd"] > 0.000001


def test_a_streamed_request_spends_the_budget_too(metered: tuple[str, RecordedEvents]) -> None:
    url, _ = metered
    paid = {**CHAT, "model": "gpt-test", "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=paid, headers=auth("sk-budget")) as response:
        assert response.status_code == 200
        response.read()
    refused = httpx.post(f"{url}/v1/chat/completions", json=paid, headers=auth("sk-budget"))
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exceeded"


def _concurrent(url: str, key: str, count: int) -> list[int]:
    async def run() -> list[int]:
        limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            answers = await asyncio.gather(*(
                client.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth(key)) for _ in range(count)
            ))  # fmt: skip
        return [answer.status_code for answer in answers]

    return asyncio.run(run())


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_200_concurrent_requests_on_one_replica_admit_exactly_the_limit(
    backend: str, upstream_url: str, tmp_path: Path
) -> None:
    server: dict[str, str] = {}
    prefixes = None
    if backend == "redis":
        prefixes = redis_prefix()
        server = {"redis_url": REDIS_URL, "redis_prefix": next(prefixes)}
    app = create_app(metered_settings(upstream_url, str(tmp_path / "server.db"), **server))
    with serve(app) as url:
        statuses = _concurrent(url, "sk-fifty", 200)
        assert statuses.count(200) == 50 and statuses.count(429) == 150
        usage = httpx.get(f"{url}/v1/usage", params={"key_id": "sk-fifty"}, headers=auth("sk-usage")).json()
        assert usage["total"]["requests"] == 50  # each admitted and answered request counted once
    if prefixes is not None:
        next(prefixes, None)


def test_redis_down_refuses_limited_keys_with_503_and_serves_unlimited_ones(upstream_url: str, tmp_path: Path) -> None:
    down = f"redis://127.0.0.1:{closed_port()}/0"
    settings = metered_settings(upstream_url, str(tmp_path / "server.db"), redis_url=down)
    with serve(create_app(settings)) as url:
        refused = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth("sk-limited"), timeout=30)
        assert refused.status_code == 503
        error = refused.json()["error"]
        assert error["code"] == "limits_unavailable" and "Redis" in error["message"]
        assert refused.headers["Retry-After"] == "1"
        # A key with no limit has nothing to check: it is served.
        assert httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth("sk-usage")).status_code == 200
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["limits"] == "unavailable (Redis)" and ready.json()["checks"]["state"] == "ok"


def test_a_budget_needs_a_price_on_every_paid_model() -> None:
    server = {"keys": [{"key_sha256": sha256("sk-veil-budget"), "limits": {"monthly_budget": 5}}]}
    providers = {"paid": {"base_url": "http://127.0.0.1:9/v1"}}
    with pytest.raises(ValidationError, match=r"models\.gpt\.price: a key has a monthly_budget"):
        Settings(server=server, providers=providers, models={"gpt": {"provider": "paid"}})
    free = {"gpt": {"provider": "paid", "price": {"input": 0, "output": 0}}}
    assert Settings(server=server, providers=providers, models=free).models["gpt"].price.input == 0  # said so
    assert "echo" in Settings(server=server).models  # the local echo models are free without saying so
