"""The system under load, as separate processes on loopback: two `veil serve` replicas (same
veil.toml, same KEK) sharing a fresh PostgreSQL database (vault and state) and a Redis server of
the test's own (limits), in front of the faulty echo upstream (load_upstream.py).

Each process can be killed (SIGKILL: a crash, nothing flushed) and started again on its port.
The test's Redis is its own `redis-server` (never the shared one on 6379), with an append-only
file fsynced on every write: limits are state, and a Redis that forgets them on a restart would
admit a second full window (see docs/reliability.md, "Load with faults").
"""

from __future__ import annotations

import base64
import hashlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from services import postgres_database, require_service

from veil.detect.policy import Policy

UPSTREAM_SCRIPT = Path(__file__).with_name("load_upstream.py")
PROVIDER_TIMEOUT = 2.0
"""Seconds the gateway waits for the upstream (its 504 after that); the slow upstream waits up to 3."""
KEYS = {
    "sk-load": '["chat", "anonymize", "mapping:read", "usage"]',
    "sk-load-limited": '["chat", "usage"]',
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class Service:
    """One process of the system, restartable on the same port."""

    name: str
    command: list[str]
    ready_line: str
    """A line the process prints once it serves."""
    port: int
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    process: subprocess.Popen[str] | None = None
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _started: threading.Event = field(default_factory=threading.Event)
    pids: list[int] = field(default_factory=list)
    """Every process id this service had (one per start)."""
    tail: deque[str] = field(default_factory=deque)
    """The last lines it printed (for a failure's message)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def spawn(self) -> None:
        """Start the process (`wait_ready` waits until it serves)."""
        process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.cwd,
            env={**os.environ, **self.env},
        )  # fmt: skip
        lines: queue.Queue[str | None] = queue.Queue()
        assert process.stdout is not None
        output = process.stdout
        started = threading.Event()
        tail: deque[str] = deque(maxlen=200)
        self.tail = tail

        def drain() -> None:  # keeps reading for the process's whole life, so its pipe never fills
            for line in output:
                if started.is_set():
                    tail.append(line)  # the last lines only (an access log line per request)
                else:
                    lines.put(line)
            lines.put(None)

        threading.Thread(target=drain, daemon=True).start()
        self.process = process
        self.pids.append(process.pid)
        self._lines, self._started = lines, started

    def ready(self) -> bool:
        return self.process is not None and self._started.is_set()

    def wait_ready(self, timeout: float = 120.0) -> None:
        assert self.process is not None
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.process.kill()
                raise RuntimeError(f"{self.name} did not start:\n" + "".join(seen[-40:]))
            seen.append(line)
            if self.ready_line in line:
                self._started.set()
                return

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.process = None

    def rss_kib(self) -> int | None:
        """Resident memory (VmRSS) of the running process, None if it is not running."""
        if self.process is None:
            return None
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return None


@dataclass
class Cluster:
    replicas: list[Service]
    redis: Service
    upstream: Service
    database: str
    redis_url: str
    prefix: str
    per_minute: int

    def services(self) -> list[Service]:
        return [*self.replicas, self.redis, self.upstream]


def sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def gateway_config(path: Path, database: str, redis_url: str, prefix: str, *, upstream: str, per_minute: int) -> Path:
    lines = ["[server]", f'state_url = "{database}"', f'redis_url = "{redis_url}"', f'redis_prefix = "{prefix}"',
             'log_level = "warning"']  # fmt: skip
    for key, scopes in KEYS.items():
        lines += ["", "[[server.keys]]", f'name = "{key}"', f'key_sha256 = "{sha256(key)}"', f"scopes = {scopes}"]
        if key == "sk-load-limited":
            lines.append(f"limits = {{ requests_per_minute = {per_minute} }}")
    lines += ["", "[vault]", f'url = "{database}"', 'keys = "env"']
    if "ner" in Policy.__dataclass_fields__:
        lines += ["", "[policy]", 'ner = "off"']
    lines += ["", "[providers.faulty]", f'base_url = "{upstream}/v1"', f"timeout = {PROVIDER_TIMEOUT}",
              "retries = 0", 'location = "loopback"', "", '[models."model-a"]', 'provider = "faulty"',
              'upstream = "echo"', "price = { input = 1.0, output = 2.0 }"]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def redis_server() -> str:
    found = shutil.which("redis-server")
    if found is None:
        require_service("redis-server", "the load test starts (and restarts) a Redis of its own")
    assert found is not None
    return found


@contextmanager
def cluster(home: Path, *, per_minute: int, persistent_redis: bool = True) -> Iterator[Cluster]:
    """Start everything (skip without PostgreSQL or redis-server, fail under CI); stop it all after.
    `per_minute`: the limit of the key `sk-load-limited`. `persistent_redis=False`: a Redis that
    forgets everything when it restarts (to see the check of over-admission fail)."""
    binary = redis_server()
    with ExitStack() as stack:
        database = stack.enter_context(postgres_database())
        (home / "redis").mkdir()
        redis_port = free_port()
        redis = Service(
            "redis", [binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                      "--appendonly", "yes" if persistent_redis else "no", "--appendfsync", "always",
                      "--dir", str(home / "redis"), "--loglevel", "notice"],
            "Ready to accept connections", redis_port,
        )  # fmt: skip
        upstream_port = free_port()
        upstream = Service("upstream", [sys.executable, str(UPSTREAM_SCRIPT), str(upstream_port)],
                           "Application startup complete", upstream_port)  # fmt: skip
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        prefix = "veilload"
        config = gateway_config(
            home / "veil.toml", database, redis_url, prefix, upstream=upstream.url, per_minute=per_minute
        )
        kek = base64.b64encode(os.urandom(32)).decode()
        replicas = []
        for name in ("a", "b"):
            (home / name).mkdir()
            port = free_port()
            command = [sys.executable, "-m", "veil.cli", "serve", "--config", str(config), "--port", str(port)]
            # uvicorn's start-up lines are printed at level info: the replica logs at info for them.
            env = {"VEIL_HOME": str(home / name), "VEIL_KEK": kek, "VEIL_SERVER__LOG_LEVEL": "info"}
            replicas.append(Service(f"replica-{name}", command, "Application startup complete", port, env, home / name))
        system = Cluster(replicas, redis, upstream, database, redis_url, prefix, per_minute)
        try:
            for service in (redis, upstream, *replicas):
                service.spawn()  # all at once: each replica takes seconds to import and migrate
            for service in (redis, upstream, *replicas):
                service.wait_ready()
            yield system
        finally:
            for service in system.services():
                service.kill(signal.SIGTERM)
