"""Rate limits, budgets and usage on veil's gateway, seen from a client.

The gateway runs here in a thread with two API keys: a team's key limited to 3 requests a minute,
and a finance key that may read usage. The team's fourth request gets OpenAI's 429
(`rate_limit_exceeded`, with `Retry-After`), which the official SDK raises as `RateLimitError`;
then `GET /v1/usage` shows the requests, tokens and cost counted for the tenant.

In production: `server.redis_url` shares the limits between replicas, and `server.state_url =
"postgresql://…"` the usage (see docs/deploy.md).

Run: uv run python examples/server_limits.py
"""

import hashlib
import json
import socket
import tempfile
import threading

import httpx
import uvicorn
from openai import OpenAI, RateLimitError
from veil_server import Settings, create_app

TEAM_KEY, FINANCE_KEY = "sk-veil-team-example", "sk-veil-finance-example"


def start_gateway(state_dir: str) -> tuple[str, uvicorn.Server, threading.Thread]:
    team = {"name": "team", "key_sha256": hashlib.sha256(TEAM_KEY.encode()).hexdigest(), "scopes": ["chat"],
            "limits": {"requests_per_minute": 3, "monthly_budget": 25.0}}  # fmt: skip
    finance = {"name": "finance", "key_sha256": hashlib.sha256(FINANCE_KEY.encode()).hexdigest(), "scopes": ["usage"]}
    # Usage rows go to state_url (SQLite here; PostgreSQL for replicas).
    server = {"state_url": f"{state_dir}/server.db", "keys": [team, finance]}
    settings = Settings(server=server, vault={"url": "memory"}, policy={"ner": "off"})
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    gateway = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=gateway.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}/v1", gateway, thread


def main() -> None:
    with tempfile.TemporaryDirectory() as state_dir:
        base_url, server, thread = start_gateway(state_dir)
        try:
            client = OpenAI(base_url=base_url, api_key=TEAM_KEY, max_retries=0)
            for attempt in range(1, 5):
                try:
                    raw = client.chat.completions.with_raw_response.create(
                        model="echo", messages=[{"role": "user", "content": "Écrivez à marie@exemple.ca"}]
                    )
                    print(f"request {attempt}: 200, {raw.headers['x-ratelimit-remaining-requests']} left this minute")
                except RateLimitError as error:
                    retry = error.response.headers["Retry-After"]
                    print(f"request {attempt}: 429 {error.code}, retry after {retry} s")
            usage = httpx.get(f"{base_url}/usage", params={"group_by": "model"},
                              headers={"Authorization": f"Bearer {FINANCE_KEY}"}).json()  # fmt: skip
            print("usage:", json.dumps(usage["total"]))
        finally:
            server.should_exit = True
            thread.join(timeout=10)


if __name__ == "__main__":
    main()
