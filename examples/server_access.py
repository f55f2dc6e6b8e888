"""API keys and access tokens on veil's gateway: an operator creates a key for a team, the team
exchanges it for a short-lived token, uses the token with the OpenAI SDK, and the key is revoked.

The gateway runs here in a thread with one admin key from the configuration (as `veil serve`
would with `[[server.keys]]`) and its state database in a temporary directory. On a real server
the same steps are `veil keys create …` or `POST /v1/admin/keys`, then `POST /v1/auth/token`.

Run: uv run python examples/server_access.py
"""

import socket
import tempfile
import threading
from pathlib import Path

import httpx
import openai
import uvicorn
from veil_server import Settings, create_app

ADMIN_KEY = "sk-veil-ops-example-admin-key"  # in production: key_env = "VEIL_ADMIN_KEY", never in a file


def start_gateway(state_dir: Path) -> tuple[str, uvicorn.Server, threading.Thread]:
    settings = Settings(
        server={"keys": [{"key": ADMIN_KEY, "name": "ops", "tenant": "acme", "scopes": ["admin"]}],
                "state_url": str(state_dir / "server.db")},
        vault={"url": "memory"},
        policy={"ner": "off"},  # rules only: starts in a second
    )  # fmt: skip
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        url, server, thread = start_gateway(Path(directory))
        try:
            admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            # 1. The operator creates a key for the support team: chat only, anonymization forced.
            created = admin.post("/v1/admin/keys", json={
                "name": "support team", "scopes": ["chat", "models"],
                "policy": {"anonymize": True, "allow_opt_out": False}, "limits": {"requests_per_minute": 60},
            }).json()  # fmt: skip
            key = created["key"]  # shown once: hand it over now
            print("created key:   ", created["id"], "tenant", created["tenant"], "scopes", created["scopes"])
            print("listed as:     ", admin.get(f"/v1/admin/keys/{created['id']}").json()["redacted_key"])

            # 2. The team's job exchanges the key for a 5-minute token that can only chat.
            issued = httpx.post(f"{url}/v1/auth/token", json={"scopes": ["chat"], "expires_in": 300},
                                headers={"Authorization": f"Bearer {key}"}).json()  # fmt: skip
            print("token:          type", issued["token_type"], "expires in", issued["expires_in"], "s, scopes",
                  issued["scopes"])  # fmt: skip

            # 3. The token works wherever a key does: here, the OpenAI SDK.
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=issued["access_token"], max_retries=0)
            answer = client.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "Écrivez à marie@exemple.qc.ca"}]
            )
            print("answer:        ", answer.choices[0].message.content)
            try:
                client.models.list()
            except openai.PermissionDeniedError as exc:
                print("narrowed:       /v1/models refused:", exc.body["code"])  # type: ignore[index]

            # 4. Revoked: the key and every token issued for it stop working at the next request.
            admin.delete(f"/v1/admin/keys/{created['id']}")
            try:
                client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "encore"}])
            except openai.AuthenticationError as exc:
                print("after revoke:  ", exc.body["code"], "-", exc.body["message"])  # type: ignore[index]
        finally:
            server.should_exit = True
            thread.join(timeout=10)


if __name__ == "__main__":
    main()
