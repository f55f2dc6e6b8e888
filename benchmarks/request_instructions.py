#!/usr/bin/env python3
"""CPU instructions the gateway spends per chat request, counted by callgrind: a load-independent
measure of the request path for A/B comparisons on a shared machine (server_overhead.py times the
same requests, and its figures move with the machine's load).

The gateway is server_overhead.py's (rules-only anonymization, the default per-request scope, an
API key from veil.toml, a local upstream that answers at once) and is driven in process through
its ASGI interface: middleware, FastAPI's validation and dependencies, authentication, admission,
anonymization, the upstream call over aiohttp (to veil's echo app under uvicorn, in its own
process, not counted), the restore, the usage row, the response. uvicorn's HTTP parsing and
socket writes are not counted. The request is the benchmark's 1 KB chat message; `unary` counts a
whole non-streamed request, `stream` a whole streamed one (250 chunks relayed).

Each count runs the gateway in a fresh interpreter under `valgrind --tool=callgrind` twice (hash
randomisation off): the same start-up and warm-up, then 0 or N requests; the difference divided
by N is the cost of one request. `--against DIR` counts a second checkout too (e.g. made with
`git worktree add /tmp/old OLD`) and prints both side by side with their ratio.

    uv run python benchmarks/request_instructions.py                      # unary and stream
    uv run python benchmarks/request_instructions.py --kind unary --against /tmp/old
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import callgrind

KINDS = ("unary", "stream")
REQUESTS = 30
WARM_UP = 10
sys.path.insert(0, str(Path(__file__).parent))


def _scope(body: bytes, key: str) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
        "headers": [(b"host", b"127.0.0.1:8000"), (b"authorization", f"Bearer {key}".encode()),
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }  # fmt: skip


async def _request(app: Any, body: bytes, key: str) -> int:
    """One request through the app's ASGI interface; returns the status (the body is drained)."""
    finished = asyncio.Event()
    status = 0
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            finished.set()

    await app(_scope(body, key), receive, send)
    finished.set()
    return status


async def _lifespan(app: Any) -> tuple[asyncio.Queue[dict[str, Any]], asyncio.Task[None]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    await started.wait()
    return inbox, task


def child(kind: str, count: int) -> None:
    """Runs under callgrind: the gateway's start-up and warm-up, then `count` requests of `kind`."""
    from server_overhead import BODY, KEY
    from veil_server.app import app_from_environment

    app = app_from_environment()
    body = json.dumps({**BODY, "stream": kind == "stream"}).encode()

    async def run() -> None:
        inbox, lifespan = await _lifespan(app)
        for _ in range(WARM_UP):
            for warm in (False, True):
                await _request(app, json.dumps({**BODY, "stream": warm}).encode(), KEY)
        for _ in range(count):
            status = await _request(app, body, KEY)
            if status != 200:
                raise SystemExit(f"the gateway answered {status}")
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan

    asyncio.run(run())


def instructions(kind: str, count: int, source: str | None, config: Path, home: Path) -> int:
    """Instructions callgrind counts for a child run that sends `count` requests after the warm-up."""
    return callgrind.count(__file__, ["--child", kind, str(count)], paths=callgrind.checkout_paths(source),
                           environment={"VEIL_CONFIG": str(config), "VEIL_HOME": str(home)})  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", action="append", choices=KINDS, help="repeatable; default: both")
    parser.add_argument("--requests", type=int, default=REQUESTS, help=f"requests counted (default {REQUESTS})")
    parser.add_argument("--against", help="a second source tree (a checkout of the repository) to count")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (callgrind counts the instructions): apt-get install valgrind")
    from server_overhead import free_port, gateway_config, process

    port = free_port()
    upstream = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "uvicorn", "--factory", "veil_server.echo:create_echo_app", "--port", str(port),
               "--log-level", "warning", "--no-access-log"]  # fmt: skip
    trees = [("this checkout", None)] + ([(args.against, args.against)] if args.against else [])
    print(f"gateway: instructions per 1 KB chat request (rules only, per-request scope; {args.requests} requests)")
    with tempfile.TemporaryDirectory() as tmp, process(command, f"{upstream}/v1/models"):
        home = Path(tmp)
        config = gateway_config(home, upstream, "memory")
        for kind in args.kind or list(KINDS):
            counts = []
            for name, source in trees:
                base = instructions(kind, 0, source, config, home)
                total = instructions(kind, args.requests, source, config, home)
                counts.append((name, (total - base) / args.requests))
            width = max(len(name) for name, _ in counts)
            for name, count in counts:
                ratio = f"  ({count / counts[0][1]:.2f}× this checkout)" if name != counts[0][0] else ""
                print(f"{kind:6s}  {name.ljust(width)}  {count / 1e6:6.2f} M{ratio}")


if __name__ == "__main__":
    main()
