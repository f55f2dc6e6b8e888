"""Two `veil serve` processes on loopback sharing PostgreSQL (vault and state) and Redis (limits), as
behind a load balancer: tokens issued by one restore on the other, a limit of 50 a minute admits
exactly 50 of 200 concurrent requests spread over both, and each answered request is counted once."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_setup import CANARY_TEXT, sha256
from metering import start_serve, wait_started
from services import REDIS_URL, postgres_database, redis_prefix

from veil.detect.policy import Policy

KEYS = {
    "sk-veil-writer": '["chat", "anonymize", "mapping:read", "usage"]',
    "sk-veil-fifty": '["chat", "usage"]',
}


def _config(path: Path, database: str, prefix: str) -> Path:
    lines = [
        "[server]",
        f'state_url = "{database}"',
        f'redis_url = "{REDIS_URL}"',
        f'redis_prefix = "{prefix}"',
    ]
    for key, scopes in KEYS.items():
        lines += ["", "[[server.keys]]", f'name = "{key}"', f'key_sha256 = "{sha256(key)}"', f"scopes = {scopes}"]
        if key == "sk-veil-fifty":
            lines.append("limits = { requests_per_minute = 50 }")
    lines += ["", "[vault]", f'url = "{database}"', 'keys = "env"']
    if "ner" in Policy.__dataclass_fields__:
        lines += ["", "[policy]", 'ner = "off"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Two replicas (base URLs) of one gateway: same veil.toml, same KEK, same PostgreSQL, same Redis."""
    prefixes = redis_prefix()
    prefix = next(prefixes)
    kek = base64.b64encode(os.urandom(32)).decode()
    with postgres_database() as database:
        home = tmp_path_factory.mktemp("replicas")
        config = _config(home / "veil.toml", database, prefix)
        started = []
        for name in ("a", "b"):  # started together: their migrations race, as in a real roll-out
            (home / name).mkdir()
            started.append(start_serve(config, home / name, {"VEIL_KEK": kek}))
        try:
            for process, _ in started:
                wait_started(process)
            yield started[0][1], started[1][1]
        finally:
            for process, _ in started:
                process.terminate()
            for process, _ in started:
                process.wait(timeout=20)
    next(prefixes, None)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_tokens_issued_by_one_replica_restore_on_the_other(replicas: tuple[str, str]) -> None:
    first, second = replicas
    anonymized = httpx.post(f"{first}/v1/anonymize", json={"text": CANARY_TEXT, "scope": "case-42"},
                            headers=auth("sk-veil-writer"), timeout=30).json()  # fmt: skip
    assert anonymized["pii_count"] == 4 and "{{EMAIL_1}}" in anonymized["anonymized_text"]
    restored = httpx.put(f"{second}/v1/anonymize", json={"text": anonymized["anonymized_text"], "scope": "case-42"},
                         headers=auth("sk-veil-writer"), timeout=30)  # fmt: skip
    assert restored.status_code == 200 and restored.json()["text"] == CANARY_TEXT
    # The same value gets the same token whichever replica sees it.
    again = httpx.post(f"{second}/v1/anonymize", json={"text": CANARY_TEXT, "scope": "case-42"},
                       headers=auth("sk-veil-writer"), timeout=30).json()  # fmt: skip
    assert again["anonymized_text"] == anonymized["anonymized_text"]


def test_a_limit_is_shared_exactly_and_usage_counted_once(replicas: tuple[str, str]) -> None:
    chat = {"model": "echo", "messages": [{"role": "user", "content": "Bonjour, marie@exemple.ca"}]}

    async def run() -> list[tuple[int, int]]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:

            async def one(index: int) -> tuple[int, int]:
                replica = index % 2  # a round-robin load balancer
                answer = await client.post(f"{replicas[replica]}/v1/chat/completions", json=chat,
                                           headers=auth("sk-veil-fifty"))  # fmt: skip
                return replica, answer.status_code

            return await asyncio.gather(*(one(index) for index in range(200)))

    results = asyncio.run(run())
    statuses = [status for _, status in results]
    assert statuses.count(200) == 50 and statuses.count(429) == 150, sorted(set(statuses))
    # Each replica received 100 requests, twice the limit: with a count of its own each would admit
    # 50, 100 in all. Which replica wins the slots depends on scheduling (one took all 50 on a
    # loaded machine), so the total is what proves the count is shared.
    # Each replica stores its rows in batches; reading usage flushes the replica's own queue.
    # After both have been read once, both report the one shared table: 50 requests, not 100, not 25.
    for replica in (*replicas, *replicas):
        usage = httpx.get(f"{replica}/v1/usage", params={"key_id": "sk-veil-fifty"},
                          headers=auth("sk-veil-fifty"), timeout=30).json()  # fmt: skip
    assert usage["total"]["requests"] == 50 and usage["total"]["prompt_tokens"] > 0
    first = httpx.get(f"{replicas[0]}/v1/usage", params={"key_id": "sk-veil-fifty"}, headers=auth("sk-veil-fifty"))
    assert first.json()["total"] == usage["total"]
