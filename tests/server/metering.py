"""Shared pieces of the limits and usage tests: a metered gateway's settings, an event recorder,
and a TCP proxy on loopback that can be cut, to take a real PostgreSQL or Redis "down" mid-test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from canaries import SCANNER
from gateway_setup import FAILURE_MODELS, gateway_settings, sha256
from server_live import closed_port
from veil_server import Settings
from veil_server.events import Event

PRICE = {"input": 1.0, "output": 2.0}  # US dollars per million tokens
METERED_KEYS: dict[str, dict[str, Any]] = {
    "sk-usage": {"scopes": ["chat", "embeddings", "anonymize", "scan", "usage", "models"]},
    "sk-limited": {"scopes": ["chat", "usage"], "limits": {"requests_per_minute": 2}},
    "sk-fifty": {"scopes": ["chat"], "limits": {"requests_per_minute": 50}},
    "sk-budget": {"scopes": ["chat", "usage"], "limits": {"monthly_budget": 0.000001}},
    "sk-other": {"tenant": "other", "scopes": ["chat", "usage"]},
    "sk-no-usage-scope": {"scopes": ["chat"]},
}


def metered_settings(upstream_url: str, state_url: str, **server: Any) -> Settings:
    """The test gateway (tests/server/conftest.py) with metered keys and a price on every paid model."""
    models = {name: {"provider": "recording", "price": PRICE} for name in FAILURE_MODELS}
    models.update({
        "gpt-test": {"provider": "recording", "upstream": "echo", "price": PRICE},
        "embed-test": {"provider": "recording", "upstream": "echo-embedding", "category": "embedding", "price": PRICE},
        "down-model": {"provider": "down", "price": PRICE},
    })  # fmt: skip
    keys = [{"key_sha256": sha256(key), "name": key, **spec} for key, spec in METERED_KEYS.items()]
    return gateway_settings(upstream_url, server={"keys": keys, "state_url": state_url, **server}, models=models)


class RecordedEvents:
    """An EventSink keeping what it is given; `wait` blocks until an event of a name arrives."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._arrived = threading.Condition()

    def emit(self, event: Event) -> None:
        with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()

    def named(self, name: str) -> list[Event]:
        return [event for event in self.events if event.name == name]

    def wait(self, name: str, count: int = 1, timeout: float = 15) -> list[Event]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.named(name)) >= count, timeout)
        return self.named(name)


class TcpProxy:
    """Forwards a loopback port to a real service; `cut()` closes every connection and stops
    listening (the service looks down), `restore()` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            with suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone does not)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@contextmanager
def proxied(target_port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target_port)
    proxy.restore()
    try:
        yield proxy
    finally:
        proxy.cut()


def start_serve(config: Path, home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """`veil serve --config …` in its own process (its own VEIL_HOME); returns it and its base URL."""
    port = closed_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "veil.cli", "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "VEIL_HOME": str(home), **env},
        cwd=home,
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


def wait_started(process: subprocess.Popen[str]) -> None:
    """Until uvicorn says it serves (then the pipe is kept drained), or fail with what it printed."""
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if "Application startup complete" in line:
            break
    else:
        pytest.fail("veil serve did not start:\n" + "".join(seen))
    for line in seen:
        SCANNER.observe("subprocess veil serve", line, kind="lines of subprocess output")
    stream = process.stderr

    def drain() -> None:  # every line uvicorn and the gateway log, scanned for canaries
        for line in stream:
            SCANNER.observe("subprocess veil serve", line, kind="lines of subprocess output")

    threading.Thread(target=drain, daemon=True).start()
