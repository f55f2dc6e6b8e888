"""A real webhook receiver on loopback for the tests: http.server in a thread, verifying every
delivery with veil.webhooks.verify, answering a scripted series of status codes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from veil import WebhookSignatureError
from veil.webhooks import verify


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    refusal: str | None


@dataclass
class Receiver:
    secret: str | None = None
    statuses: list[int] = field(default_factory=list)
    """Answers in order; once used up, 200."""
    retry_after: str | None = None
    """Sent with every non-2xx answer."""
    received: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def answer(self, received: Received) -> int:
        with self.arrived:
            self.received.append(received)
            self.arrived.notify_all()
            if not received.verified:
                return 400
            return self.statuses.pop(0) if self.statuses else 200

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.received) >= count, timeout), (
                f"{len(self.received)} of {count} deliveries arrived"
            )
            return list(self.received)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            refusal = None
            try:
                verify(receiver.secret or "", body, self.headers.get("x-veil-signature") or "")
            except (WebhookSignatureError, ValueError) as exc:
                refusal = getattr(exc, "reason", "no_secret")
            received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, refusal is None,
                                refusal)  # fmt: skip
            status = receiver.answer(received)
            self.send_response(status)
            if status >= 300 and receiver.retry_after is not None:
                self.send_header("retry-after", receiver.retry_after)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Handler


@contextmanager
def receiving(receiver: Receiver) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
