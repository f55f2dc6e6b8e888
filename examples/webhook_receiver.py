"""A webhook receiver in plain Python (http.server, no framework) that verifies veil's signatures.

It runs here against a real gateway in a thread: an admin subscribes the receiver to
`anonymize.flagged`, a chat request carrying three personal values triggers the event, and the
receiver verifies the delivery with `veil.webhooks.verify` before trusting it. Then it shows what
a receiver refuses: a tampered body, and a captured delivery replayed ten minutes later.

In your receiver keep only `WebhookHandler` (and read the secret from your secret store).

Run: uv run python examples/webhook_receiver.py
"""

import json
import queue
import socket
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import uvicorn
from veil_server import Settings, create_app

from veil import WebhookSignatureError
from veil.webhooks import sign, verify

SECRET: dict[str, str] = {}  # the subscription's whsec_… secret, from your secret store
DELIVERIES: "queue.Queue[dict]" = queue.Queue()
SEEN: set[str] = set()  # delivery ids handled (keep them in your database)


class WebhookHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # the raw bytes, not re-serialised
        try:
            verify(SECRET["value"], body, self.headers.get("X-Veil-Signature", ""))
        except WebhookSignatureError as refused:
            self.answer(400)
            DELIVERIES.put({"refused": refused.reason})
            return
        delivery = self.headers.get("X-Veil-Delivery", "")
        if delivery not in SEEN:  # retries repeat the same delivery id: handle each once
            SEEN.add(delivery)
            DELIVERIES.put(json.loads(body))
        self.answer(200)

    def answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


def start_receiver() -> tuple[str, ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), WebhookHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/veil-hooks", server


def start_gateway(home: Path) -> tuple[str, uvicorn.Server, threading.Thread]:
    settings = Settings(
        server={
            "keys": [
                {"key": "sk-admin-demo", "name": "admin", "scopes": ["admin"]},
                {"key": "sk-app-demo", "name": "app", "scopes": ["chat"]},
            ],
            "state_url": str(home / "server.db"),
            # The receiver is on loopback: allowed here only (production keeps private addresses refused).
            "webhooks": {"allow_private_addresses": True, "flag_threshold": 3},
        },
        vault={"url": "memory"},
        policy={"ner": "off"},  # rules only: starts in a second
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


def main() -> None:
    receiver_url, receiver = start_receiver()
    with tempfile.TemporaryDirectory() as home:
        base, gateway, thread = start_gateway(Path(home))
        try:
            admin = {"Authorization": "Bearer sk-admin-demo"}
            created = httpx.post(f"{base}/v1/admin/webhooks", headers=admin,
                                 json={"url": receiver_url, "events": ["anonymize.flagged"]}).json()  # fmt: skip
            SECRET["value"] = created["secret"]  # shown once: store it in your secret store
            print("subscribed:     ", created["id"], created["events"])

            message = "Écrivez à marie.tremblay@exemple.qc.ca ou au +1 514 872 3456. NAS 130 692 544."
            httpx.post(f"{base}/v1/chat/completions", headers={"Authorization": "Bearer sk-app-demo"},
                       json={"model": "echo", "messages": [{"role": "user", "content": message}]})  # fmt: skip
            event = DELIVERIES.get(timeout=30)
            print("verified event: ", event["type"], json.dumps(event["data"]["pii_types"], sort_keys=True))
            values = ("marie.tremblay", "514 872 3456", "130 692 544")
            print("values in event:", any(v in json.dumps(event) for v in values))

            body = json.dumps({"id": "evt_demo", "type": "anonymize.flagged", "data": {"pii_count": 99}}).encode()
            tampered = httpx.post(receiver_url, content=body.replace(b"99", b"0"),
                                  headers={"X-Veil-Signature": sign(SECRET["value"], body)})  # fmt: skip
            print("tampered body:  ", tampered.status_code, DELIVERIES.get(timeout=5)["refused"])
            old = sign(SECRET["value"], body, timestamp=int(time.time()) - 600)
            replayed = httpx.post(receiver_url, content=body, headers={"X-Veil-Signature": old})
            print("replayed (old): ", replayed.status_code, DELIVERIES.get(timeout=5)["refused"])

            log = httpx.get(f"{base}/v1/admin/webhooks/{created['id']}/deliveries", headers=admin).json()["data"]
            print("delivery log:   ", [(d["event"], d["status"], d["attempts"]) for d in log])
        finally:
            gateway.should_exit = True
            thread.join(timeout=10)
            receiver.shutdown()


if __name__ == "__main__":
    main()
