"""Latency veil's gateway adds over calling the same upstream directly.

A local upstream that answers at once (veil's echo app under uvicorn, its own process) serves a
1 KB chat request with a few personal values in it, first directly, then through `veil serve`
(rules-only anonymization, an API key from veil.toml). Three set-ups: the default per-request
in-memory scope; a SQLite vault with a new named scope per request (`X-Veil-Scope`: its tokens
are written to the vault, encrypted); the same with 2 workers. Printed: added latency
p50/p95/p99 on unary requests, time-to-first-token overhead on streams, the CPU each process
spends per request and per stream, throughput (16 concurrent clients), start-up time to
/healthz (median of 3, byte code compiled as after `pip install`), the first request's latency,
and resident memory per worker.

With one worker, the unary and stream latencies are measured twice: with every process free to
run on any core (the kernel places them), then with the upstream on a core of its own and the
gateway on the other (this client still free), as a remote upstream would be: on 2 shared cores,
a woken gateway queued behind the echo's burst of 250 chunks on the echo's core waits for the
echo's time slice to end, and that wait, which happens in about half the streams, is the upstream's
CPU, not the gateway's (see docs/server.md, "The first token and the upstream's core").

Throughput is measured with `wrk` when it is installed (`apt-get install wrk`: a C load
generator, so that the 2 cores go to the servers, not to the client), else with threads of
httpx clients; direct and through veil always with the same generator, one after the other.

Then the cost of access control and metering alone, per request, in process (no HTTP): the API
key's check, admission by the limiter (per-minute, per-day and budget limits all set) and the
usage row written at the end, with in-process limits and SQLite usage (one replica), and with
Redis limits and SQLite or PostgreSQL usage (replicas). Wall time p50/p99 and CPU time.

    uv run python benchmarks/server_overhead.py [--requests 400] [--concurrency 16]
    uv run python benchmarks/server_overhead.py --metering-only [--requests 2000]

The machine has 2 cores shared by everything running on it (the upstream, the gateway, this
client and, while the project is worked on, other agents): numbers are noisy; compare runs made
back to back, and read them as an upper bound of the gateway's cost.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

KEY = "sk-veil-bench"
MESSAGE = (
    "Bonjour, je vous écris au sujet de ma réclamation. Vous pouvez me joindre à marie.tremblay@exemple.qc.ca "
    "ou au +1 514 872 3456 entre 9 h et 17 h. "
) + "Le dossier concerne un dégât d'eau survenu au sous-sol la semaine dernière; l'expert est passé. " * 9
BODY = {"model": "bench", "messages": [{"role": "user", "content": MESSAGE[:1000]}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 60.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def process(
    command: list[str], ready_url: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    started = time.perf_counter()
    environment = {**os.environ, **(env or {})}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)  # start-up as installed: byte code compiled once
    proc = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_ready(ready_url)
        yield proc, time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes (from /proc): what they cost, whatever the machine's load."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def worker_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [int(p) for p in children.read_text().split()] if children.exists() else []
    return found or [pid]


def own_cores() -> list[int]:
    """The CPUs this process may run on (the ones the servers and this client share)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def set_affinity(pid: int, cpus: set[int]) -> None:
    """Every thread of process `pid` on `cpus` (threads it starts later inherit their creator's)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except ProcessLookupError:  # a thread that ended meanwhile
            continue


@contextmanager
def upstream_apart(upstream_pid: int, gateway_pids: list[int]) -> Iterator[bool]:
    """The upstream on a core of its own, the gateway on the others, this client anywhere; all
    processes back on every core afterwards. Yields False (nothing changed) on fewer than 2 cores
    or where affinity cannot be set."""
    cores = own_cores()
    apart = len(cores) >= 2
    try:
        if apart:
            try:
                set_affinity(upstream_pid, {cores[-1]})
                for pid in gateway_pids:
                    set_affinity(pid, set(cores[:-1]))
            except OSError:  # not allowed here (a restricted cpuset, a container's policy)
                apart = False
        yield apart
    finally:
        for pid in [upstream_pid, *gateway_pids] if cores else ():
            try:
                set_affinity(pid, set(cores))
            except OSError:
                continue


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return at(0.50), at(0.95), at(0.99)


def paired(
    direct: str, veil: str, n: int, headers: dict[str, str], *, stream: bool, scoped: bool = False
) -> tuple[list[float], list[float]]:
    """Latency (unary) or time to the first token (stream) of the same request sent alternately to
    the upstream and through veil: both sides see the same load on this shared machine.
    `scoped`: each request names a new scope (its tokens are written to the vault)."""
    body = {**BODY, "stream": True} if stream else BODY
    counter = iter(range(10**9))

    def once(client: httpx.Client) -> float:
        extra = {"X-Veil-Scope": f"bench-{os.getpid()}-{next(counter)}"} if scoped else None
        started = time.perf_counter()
        if not stream:
            client.post("/chat/completions", json=body, headers=extra).raise_for_status()
            return time.perf_counter() - started
        first = 0.0
        with client.stream("POST", "/chat/completions", json=body, headers=extra) as response:
            for line in response.iter_lines():
                if not first and '"content":"' in line and '"content":""' not in line:
                    first = time.perf_counter() - started
        return first

    with (
        httpx.Client(base_url=direct, headers=headers, timeout=30) as to_upstream,
        httpx.Client(base_url=veil, headers=headers, timeout=30) as to_veil,
    ):
        for _ in range(20):  # warm-up: connections, caches
            once(to_upstream), once(to_veil)
        direct_samples, veil_samples = [], []
        for _ in range(n):
            direct_samples.append(once(to_upstream))
            veil_samples.append(once(to_veil))
    return direct_samples, veil_samples


def latency_rows(
    label: str, direct: str, veil: str, counts: tuple[int, int], headers: dict[str, str], *, scoped: bool
) -> list[tuple[str, str]]:
    """Added latency p50/p95/p99 of `counts[0]` unary requests and TTFT added (p50) of `counts[1]` streams."""
    rows = []
    direct_samples, veil_samples = paired(direct, veil, counts[0], headers, stream=False, scoped=scoped)
    (d50, d95, d99), (v50, v95, v99) = percentiles(direct_samples), percentiles(veil_samples)
    rows.append((f"{label}: added p50 / p95 / p99",
                 f"{(v50 - d50) * 1e3:.2f} / {(v95 - d95) * 1e3:.2f} / {(v99 - d99) * 1e3:.2f} ms"))  # fmt: skip
    direct_samples, veil_samples = paired(direct, veil, counts[1], headers, stream=True, scoped=scoped)
    d50, v50 = statistics.median(direct_samples), statistics.median(veil_samples)
    rows.append((f"{label}: TTFT direct / veil / added (p50)",
                 f"{d50 * 1e3:.2f} / {v50 * 1e3:.2f} / {(v50 - d50) * 1e3:.2f} ms"))  # fmt: skip
    return rows


def throughput(base: str, n: int, concurrency: int, headers: dict[str, str], *, scoped: bool = False) -> float:
    """Requests per second of `concurrency` clients sending the chat request (wrk if installed)."""
    if shutil.which("wrk"):
        return _wrk(base, max(5.0, n / 100), concurrency, headers, scoped=scoped)
    counter = iter(range(n))
    lock = threading.Lock()

    def work() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                extra = {"X-Veil-Scope": f"bench-tp-{os.getpid()}-{index}"} if scoped else None
                client.post("/chat/completions", json=BODY, headers=extra).raise_for_status()

    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return n / (time.perf_counter() - started)


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[BODY]==]
wrk.headers["Content-Type"] = "application/json"
HEADERS
local count = 0
local scoped = SCOPED
if scoped then
  request = function()
    count = count + 1
    local headers = {}  -- wrk.format replaces wrk.headers with the table it is given: copy them
    for name, value in pairs(wrk.headers) do headers[name] = value end
    headers["X-Veil-Scope"] = "bench-wrk-RUN-" .. count
    return wrk.format(nil, nil, headers)
  end
end
done = function(summary, latency, requests)
  io.write(string.format("VEIL-BENCH %d %d %d %d %d %d %d\\n", summary.requests, summary.errors.status,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout, summary.duration))
end
"""


def _wrk(base: str, seconds: float, concurrency: int, headers: dict[str, str], *, scoped: bool) -> float:
    """wrk (one thread, `concurrency` connections) for `seconds`: requests per second; any error fails."""
    script = (
        _WRK_SCRIPT.replace("BODY", json.dumps(BODY))
        .replace("HEADERS", "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()))
        .replace("SCOPED", "true" if scoped else "false")
        .replace("RUN", uuid.uuid4().hex[:12])
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        result = subprocess.run(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:.0f}s", "-s", handle.name, f"{base}/chat/completions"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        os.unlink(handle.name)
    line = next(line for line in result.stdout.splitlines() if line.startswith("VEIL-BENCH"))
    requests, bad_status, connect, read, write, timeout, micros = (int(part) for part in line.split()[1:])
    if bad_status or connect or read or write or timeout:
        raise RuntimeError(f"wrk: {bad_status} non-2xx answers; socket errors: {connect} connect, {read} read, "
                           f"{write} write, {timeout} timeout at {base}")  # fmt: skip
    return requests / (micros / 1e6)


def gateway_config(directory: Path, upstream: str, vault: str) -> Path:
    config = directory / f"veil-{vault}.toml"
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    config.write_text(
        f'[vault]\nurl = "{vault if vault == "memory" else directory / "vault"}"\n\n'
        '[policy]\nner = "off"\n\n'
        f'[[server.keys]]\nname = "bench"\nkey_sha256 = "{digest}"\n\n'
        f'[providers.local]\nbase_url = "{upstream}/v1"\n\n[models.bench]\nprovider = "local"\nupstream = "echo"\n',
        encoding="utf-8",
    )
    return config


def _bench_request(key: str) -> Any:
    from starlette.requests import Request

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [
        (b"authorization", f"Bearer {key}".encode()), (b"content-length", b"1100")]}  # fmt: skip
    return Request(scope)


async def _metering_samples(state_url: str, redis_url: str | None, n: int) -> tuple[list[float], float]:
    """Wall seconds of auth + admission + usage row per request on a real Gateway; CPU seconds per request."""
    from veil_server.gateway import Gateway
    from veil_server.settings import Settings

    key = "sk-veil-bench"
    limits = {"requests_per_minute": 10**9, "requests_per_day": 10**9, "monthly_budget": 10**6}
    server: dict[str, Any] = {
        "state_url": state_url,
        "redis_url": redis_url,
        "redis_prefix": f"bench{os.getpid()}",
        "keys": [{"key_sha256": hashlib.sha256(key.encode()).hexdigest(), "limits": limits}],
    }
    # A priced model: every request also charges the key's budget (the costliest path).
    models = {"bench": {"provider": "echo", "price": {"input": 0.15, "output": 0.6}}}
    gateway = Gateway(Settings(server=server, vault={"url": "memory"}, policy={"ner": "off"}, models=models))
    usage = {"usage": {"prompt_tokens": 250, "completion_tokens": 250}}
    wall = []
    try:
        for index in range(n + 100):
            if index == 100:  # after the warm-up: connections, caches
                cpu_started = time.process_time()
            request = _bench_request(key)
            started = time.perf_counter()
            caller = await gateway.authenticator.authenticate(request)
            ticket = await gateway.meter.admit(request, caller, "/v1/chat/completions", model="bench")
            await ticket.done(usage)
            if index >= 100:
                wall.append(time.perf_counter() - started)
            await asyncio.sleep(0)  # as between requests in a server: the usage writer gets its turn
        await gateway.meter.flush()
        # The whole process, background writes included, per request (the servers' own CPU is not counted).
        cpu = (time.process_time() - cpu_started) / n
    finally:
        await gateway.aclose()
    return wall, cpu


def metering_rows(n: int, directory: Path) -> list[tuple[str, str]]:
    postgres = os.environ.get("VEIL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    redis = os.environ.get("VEIL_TEST_REDIS", "redis://127.0.0.1:6379/0")
    variants = [("in-process limits, SQLite usage", str(directory / "bench-state.db"), None),
                ("Redis limits, SQLite usage", str(directory / "bench-state-redis.db"), redis),
                ("Redis limits, PostgreSQL usage", postgres, redis)]  # fmt: skip
    rows = []
    for label, state_url, redis_url in variants:
        try:
            wall, cpu = asyncio.run(_metering_samples(state_url, redis_url, n))
        except Exception as exc:  # a service not running here: say so, measure the others
            rows.append((f"auth + limits + usage, {label}", f"skipped ({type(exc).__name__})"))
            continue
        w50, _, w99 = percentiles(wall)
        rows.append((f"auth + limits + usage, {label}: wall p50 / p99, CPU per request",
                     f"{w50 * 1e3:.3f} / {w99 * 1e3:.3f} ms, {cpu * 1e3:.3f} ms"))  # fmt: skip
    return rows


def print_rows(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(title)
    print(f"{'measure'.ljust(width)}  value")
    print(f"{'-' * width}  {'-' * 24}")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--metering-only", action="store_true", help="only the auth + limits + usage rows")
    args = parser.parse_args()
    if args.metering_only:
        with tempfile.TemporaryDirectory() as tmp:
            rows = metering_rows(args.requests, Path(tmp))
        print_rows(f"veil gateway: auth + limits + usage per request, in process, {args.requests} requests; "
                   "2 shared cores", rows)  # fmt: skip
        return
    python = sys.executable
    upstream_port = free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    upstream_cmd = [python, "-m", "uvicorn", "--factory", "veil_server.echo:create_echo_app", "--port",
                    str(upstream_port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    headers = {"Authorization": f"Bearer {KEY}"}
    rows: list[tuple[str, str]] = []
    n = args.requests
    with tempfile.TemporaryDirectory() as tmp, process(upstream_cmd, f"{upstream}/v1/models") as (upstream_proc, _):
        directory = Path(tmp)
        setups = (("memory", 1, False), ("sqlite", 1, True), ("sqlite", 2, False), ("sqlite", 2, True))
        for index, (vault, workers, scoped) in enumerate(setups):
            config = gateway_config(directory, upstream, vault)
            label = (f"{vault} vault{', scope per request' if scoped else ''}, "
                     f"{workers} worker{'s' if workers > 1 else ''}")  # fmt: skip
            # Start-up: median of 3 starts (a first one compiles the byte code, as `pip install` does).
            starts = (4 if index == 0 else 3) if workers == 1 else 1
            ups, firsts, cpus = [], [], []
            for attempt in range(starts):
                port = free_port()
                command = [python, "-m", "veil.cli", "serve", "--config", str(config), "--port", str(port),
                           "--workers", str(workers), "--log-level", "warning"]  # fmt: skip
                base = f"http://127.0.0.1:{port}/v1"
                with process(command, f"http://127.0.0.1:{port}/healthz", {"VEIL_HOME": str(directory)}) as (proc, up):
                    start_cpu = cpu_seconds(worker_pids(proc.pid))
                    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                        began = time.perf_counter()
                        client.post(
                            "/chat/completions",
                            json=BODY,
                            headers={"X-Veil-Scope": f"first-{attempt}"} if scoped else None,
                        ).raise_for_status()
                        first = time.perf_counter() - began
                    if index == 0 and attempt == 0:
                        continue  # byte code compiled: not counted
                    ups.append(up)
                    firsts.append(first)
                    cpus.append(start_cpu)
                    if attempt < starts - 1:
                        continue
                    if workers == 1:
                        rows.append((f"{label}: start-up to /healthz (median of 3), its CPU; first request",
                                     f"{statistics.median(ups):.2f} s, {statistics.median(cpus):.2f} s; "
                                     f"{statistics.median(firsts) * 1e3:.1f} ms"))  # fmt: skip
                        cpu_before = cpu_seconds([proc.pid]), cpu_seconds([upstream_proc.pid])
                        direct, veil = paired(f"{upstream}/v1", base, n, headers, stream=False, scoped=scoped)
                        cpu_per_request = (cpu_seconds([proc.pid]) - cpu_before[0]) / (n + 20)
                        # The upstream served each request twice (direct, then through veil).
                        upstream_cpu = (cpu_seconds([upstream_proc.pid]) - cpu_before[1]) / (2 * (n + 20))
                        (d50, d95, d99), (v50, v95, v99) = percentiles(direct), percentiles(veil)
                        rows.append((f"{label}: direct p50 / p95 / p99",
                                     f"{d50 * 1e3:.2f} / {d95 * 1e3:.2f} / {d99 * 1e3:.2f} ms"))  # fmt: skip
                        rows.append((f"{label}: veil p50 / p95 / p99",
                                     f"{v50 * 1e3:.2f} / {v95 * 1e3:.2f} / {v99 * 1e3:.2f} ms"))  # fmt: skip
                        added = f"{(v50 - d50) * 1e3:.2f} / {(v95 - d95) * 1e3:.2f} / {(v99 - d99) * 1e3:.2f} ms"
                        rows.append((f"{label}: added p50 / p95 / p99", added))
                        rows.append((f"{label}: CPU per request, gateway / echo upstream",
                                     f"{cpu_per_request * 1e3:.2f} / {upstream_cpu * 1e3:.2f} ms"))  # fmt: skip
                        cpu_before = cpu_seconds([proc.pid]), cpu_seconds([upstream_proc.pid])
                        streams = max(20, n // 3)
                        direct, veil = paired(f"{upstream}/v1", base, streams, headers, stream=True, scoped=scoped)
                        cpu_per_stream = (cpu_seconds([proc.pid]) - cpu_before[0]) / (streams + 20)
                        overhead = statistics.median(veil) - statistics.median(direct)
                        rows.append((f"{label}: TTFT direct / veil / added (p50)",
                                     f"{statistics.median(direct) * 1e3:.2f} / {statistics.median(veil) * 1e3:.2f} / "
                                     f"{overhead * 1e3:.2f} ms"))  # fmt: skip
                        rows.append((f"{label}: gateway CPU per stream ({len(MESSAGE[:1000]) // 4} chunks)",
                                     f"{cpu_per_stream * 1e3:.2f} ms"))  # fmt: skip
                        with upstream_apart(upstream_proc.pid, [proc.pid, *worker_pids(proc.pid)]) as apart:
                            if apart:
                                rows += latency_rows(f"{label}, upstream on its own core", f"{upstream}/v1", base,
                                                     (n, streams), headers, scoped=scoped)  # fmt: skip
                    generator = "wrk" if shutil.which("wrk") else "httpx threads"
                    try:
                        direct_rps = throughput(f"{upstream}/v1", n, args.concurrency, headers)
                        rps = throughput(base, n, args.concurrency, headers, scoped=scoped)
                        measured = f"{direct_rps:.0f} / {rps:.0f} req/s"
                    except RuntimeError as error:  # a failed request is a finding: shown in the table
                        measured = f"FAILED: {error}"
                    rows.append((f"{label}: throughput direct / veil ({args.concurrency} clients, {generator})",
                                 measured))  # fmt: skip
                    memory = [rss_mb(pid) for pid in worker_pids(proc.pid)]
                    rows.append((f"{label}: RSS per worker", " / ".join(f"{m:.0f} MB" for m in memory)))
        rows += metering_rows(args.requests, directory)
    load = os.getloadavg()
    print_rows(f"veil gateway overhead — 1 KB chat request (rules only), {args.requests} requests; 2 shared cores; "
               f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}", rows)  # fmt: skip
    print(json.dumps({"message_chars": len(BODY["messages"][0]["content"])}))


if __name__ == "__main__":
    main()
