"""One load run with faults, and the figures the checks need: it drives the clients of
load_clients.py against a load_cluster.Cluster, injects the faults of a schedule at fixed
fractions of the run, samples the replicas' memory and the limiter's counter, then (everything
back up) reads the usage rows from PostgreSQL and restores every token on both replicas.

    uv run python tests/reliability/load_run.py --clients 200 --seconds 60     # prints the report
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: tests/services.py is imported from tests/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from load_clients import CLIENT_TIMEOUT, Client, Ledger, restore_every_token
from load_cluster import KEYS, PROVIDER_TIMEOUT, Cluster, cluster
from veil_server.limits import bucket_of

SHORT_SCHEDULE = (
    (0.05, "upstream slow"),
    (0.20, "kill replica a"),
    (0.45, "upstream normal"),
    (0.50, "restart redis"),
    (0.60, "upstream failing"),
    (0.90, "upstream normal"),
)
LONG_SCHEDULE = (
    (0.10, "upstream slow"),
    (0.25, "upstream normal"),
    (0.30, "kill replica a"),
    (0.45, "restart redis"),
    (0.55, "upstream failing"),
    (0.70, "upstream normal"),
    (0.75, "kill replica b"),
    (0.85, "upstream slow and failing"),
    (0.95, "upstream normal"),
)
UPSTREAM_MODES = {
    "upstream slow": {"delay": 3.0, "fail_rate": 0.0},
    "upstream failing": {"delay": 0.0, "fail_rate": 0.3},
    "upstream slow and failing": {"delay": 3.0, "fail_rate": 0.3},
    "upstream normal": {"delay": 0.0, "fail_rate": 0.0},
}


@dataclass
class Report:
    clients: int
    seconds: float
    per_minute: int
    ledger: Ledger
    timeline: list[tuple[float, str]] = field(default_factory=list)
    rss: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    """"replica-a#1" (first process of replica a) → [(seconds into the run, KiB)]."""
    limiter_counts: list[tuple[float, int]] = field(default_factory=list)
    """(seconds into the run, how many admissions the limiter's log of the limited key held)."""
    rows: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    """request id → (key id, endpoint, outcome), read from PostgreSQL after the run."""
    usage_api: dict[str, int] = field(default_factory=dict)
    tokens_checked: int = 0
    tokens_lost: list[str] = field(default_factory=list)
    upstream_counts: dict[str, int] = field(default_factory=dict)

    # -- the checks' figures -----------------------------------------------------------------------

    def usage(self) -> dict[str, Any]:
        completed = {c.request_id: c for c in self.ledger.completed() if c.request_id}
        interrupted = sum(1 for c in self.ledger.calls if c.result == "interrupted")
        seen = {c.request_id for c in self.ledger.calls if c.request_id}
        counted = {rid for rid, (_, _, outcome) in self.rows.items() if outcome == "completed"}
        return {
            "completed": len(completed),
            "rows": len(self.rows),
            "rows_completed": len(counted),
            "missing": sorted(set(completed) - set(self.rows)),
            "not_counted_as_completed": sorted(rid for rid in completed if rid in self.rows and rid not in counted),
            "counted_unseen": len(counted - seen),
            "counted_but_not_completed": len(counted - set(completed)),
            "interrupted": interrupted,
            "by_key": {key: (sum(1 for c in completed.values() if c.key == key),
                             sum(1 for rid in counted if self.rows[rid][0] == key)) for key in KEYS},
        }  # fmt: skip

    def over_admissions(self) -> tuple[int, int]:
        """(the most requests of the limited key admitted within one 60 s window, from the client's
        side, counting only those that certainly fell in it; the most the limiter's own log held)."""
        admitted = sorted((c.started, c.ended) for c in self.ledger.calls
                          if c.key == "sk-load-limited" and c.request_id is not None)  # fmt: skip
        worst = 0
        for start, _ in admitted:
            inside = sum(1 for s, e in admitted if s >= start and e < start + 60.0)
            worst = max(worst, inside)
        return worst, max((count for _, count in self.limiter_counts), default=0)

    def admissions(self) -> list[float]:
        """When the limited key's admitted requests were sent (seconds into the run)."""
        first = min((c.started for c in self.ledger.calls), default=0.0)
        return sorted(round(c.started - first, 1) for c in self.ledger.calls
                      if c.key == "sk-load-limited" and c.request_id is not None)  # fmt: skip

    def latency(self) -> float:
        return max((c.ended - c.started for c in self.ledger.calls if c.ended), default=0.0)

    def percentile(self, share: float) -> float:
        """A share (0.5, 0.99) of the completed calls took at most this long."""
        took = sorted(c.ended - c.started for c in self.ledger.completed())
        return took[min(len(took) - 1, int(share * len(took)))] if took else 0.0

    def memory(self) -> dict[str, tuple[int, int]]:
        """Per replica process: (KiB once warm: the first sample a quarter into its life, KiB at the end)."""
        figures = {}
        for name, samples in self.rss.items():
            if len(samples) >= 4:
                figures[name] = (samples[len(samples) // 4][1], samples[-1][1])
        return figures

    def table(self) -> str:
        by_status = Counter((c.op, c.result, c.status, c.code) for c in self.ledger.calls)
        usage = self.usage()
        worst, logged = self.over_admissions()
        first = min((c.started for c in self.ledger.calls), default=0.0)
        slowest = sorted(self.ledger.calls, key=lambda c: c.started - c.ended)[:5]
        lines = [f"clients {self.clients}, {self.seconds:.0f} s; requests {len(self.ledger.calls)}",
                 "faults: " + "; ".join(f"{t:.1f} s {what}" for t, what in self.timeline),
                 "op | result | status | code | count", "---|---|---|---|---"]  # fmt: skip
        lines += [f"{op} | {result} | {status or '–'} | {code or '–'} | {n}"
                  for (op, result, status, code), n in sorted(by_status.items(), key=str)]  # fmt: skip
        lines += [
            f"tokens checked {self.tokens_checked} on 2 replicas, lost {len(self.tokens_lost)}",
            f"usage: completed {usage['completed']}, rows {usage['rows']} (completed {usage['rows_completed']}), "
            f"missing {len(usage['missing'])}, counted but not completed {usage['counted_but_not_completed']} "
            f"(unseen by any client {usage['counted_unseen']}; interrupted {usage['interrupted']}), by key "
            f"{usage['by_key']}, usage API {self.usage_api}",
            f"limit {self.per_minute}/min: at most {worst} admitted in a 60 s window (client side), "
            f"limiter log at most {logged}; admitted at (s): {self.admissions()[:40]}",
            f"completed in p50 {self.percentile(0.5):.2f} s, p99 {self.percentile(0.99):.2f} s; "
            f"max latency {self.latency():.2f} s (client timeout {CLIENT_TIMEOUT:.0f} s, upstream timeout "
            f"{PROVIDER_TIMEOUT:.0f} s)",
            "RSS MiB (warm → end): " + ", ".join(f"{name} {a / 1024:.0f} → {b / 1024:.0f}"
                                                  for name, (a, b) in self.memory().items()),
            "slowest: " + "; ".join(f"{c.op} {c.result} {c.status} on {c.replica} at {c.started - first:.1f} s: "
                                    f"{c.ended - c.started:.1f} s (headers after {c.answered - c.started:.1f} s)"
                                    for c in slowest),
            f"upstream: {self.upstream_counts}",
            f"problems: {len(self.ledger.problems)}",
            *self.ledger.problems[:20],
        ]  # fmt: skip
        return "\n".join(lines)


async def _fault(system: Cluster, http: httpx.AsyncClient, what: str) -> None:
    if what in UPSTREAM_MODES:
        await http.post(f"{system.upstream.url}/control", json=UPSTREAM_MODES[what])
    elif what.startswith("kill replica"):
        replica = system.replicas[ord(what[-1]) - ord("a")]
        replica.kill(signal.SIGKILL)
        await asyncio.sleep(1.0)  # down for a second, then started again (its start-up takes seconds more)
        replica.spawn()
        await asyncio.to_thread(replica.wait_ready)
    elif what == "restart redis":
        system.redis.kill(signal.SIGKILL)
        await asyncio.sleep(0.5)
        system.redis.spawn()
        await asyncio.to_thread(system.redis.wait_ready)
    else:
        raise ValueError(what)


async def _sample_memory(system: Cluster, report: Report, started: float, stop: asyncio.Event) -> None:
    """Each replica process's RSS, every second (from when it serves until it is killed)."""
    while not stop.is_set():
        for replica in system.replicas:
            rss = replica.rss_kib() if replica.ready() else None
            if rss is not None:
                name = f"{replica.name}#{len(replica.pids)}"
                report.rss.setdefault(name, []).append((time.monotonic() - started, rss))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _sample_limiter(system: Cluster, report: Report, started: float, stop: asyncio.Event) -> None:
    """How many admissions the limiter's log of the limited key holds, every 0.25 s."""
    import redis.asyncio

    limiter = redis.asyncio.Redis.from_url(system.redis_url, socket_timeout=1, socket_connect_timeout=1)
    key = f"{system.prefix}:{{{bucket_of('default', 'sk-load-limited')}}}:minute"
    while not stop.is_set():
        with contextlib.suppress(redis.RedisError, OSError):  # Redis is being restarted
            report.limiter_counts.append((time.monotonic() - started, int(await limiter.zcard(key))))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)
    await limiter.aclose()


async def run_load(system: Cluster, *, clients: int, seconds: float, schedule: tuple[tuple[float, str], ...]) -> Report:
    report = Report(clients, seconds, system.per_minute, Ledger())
    urls = [replica.url for replica in system.replicas]
    limits = httpx.Limits(max_connections=clients + 20, max_keepalive_connections=clients + 20)
    async with httpx.AsyncClient(limits=limits, timeout=CLIENT_TIMEOUT) as http:
        started = time.monotonic()
        deadline = started + seconds
        stop = asyncio.Event()
        samplers = [asyncio.create_task(sample(system, report, started, stop))
                    for sample in (_sample_memory, _sample_limiter)]  # fmt: skip

        async def inject(fraction: float, what: str) -> None:
            await asyncio.sleep(max(0.0, started + fraction * seconds - time.monotonic()))
            report.timeline.append((time.monotonic() - started, what))
            await _fault(system, http, what)
            if what.startswith(("kill", "restart")):
                report.timeline.append((time.monotonic() - started, f"{what.rsplit(maxsplit=1)[-1]} back"))

        injector = asyncio.gather(*(inject(fraction, what) for fraction, what in schedule))
        users = [Client(index, http, urls, report.ledger, limited=index % 5 == 4) for index in range(clients)]
        await asyncio.gather(*(user.run(deadline) for user in users))
        await injector  # every process is back before the checks
        report.timeline.sort()
        stop.set()
        await asyncio.gather(*samplers)
    # The checks, on fresh connections (the load's may have been closed by the servers meanwhile).
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http:
        report.upstream_counts = (await http.get(f"{system.upstream.url}/control")).json()["counts"]
        # Reading usage flushes each replica's queue of rows; then the table holds them all.
        for url in urls:
            answer = await http.get(f"{url}/v1/usage", params={"key_id": "sk-load"},
                                    headers={"Authorization": "Bearer sk-load"})  # fmt: skip
            report.usage_api[url] = answer.json()["total"]["requests"] if answer.status_code == 200 else -1
        report.rows = await asyncio.to_thread(_usage_rows, system.database)
        report.tokens_checked, report.tokens_lost = await restore_every_token(http, urls, report.ledger)
    return report


def _usage_rows(database: str) -> dict[str, tuple[str, str, str]]:
    import psycopg

    with psycopg.connect(database) as connection:
        rows = connection.execute("SELECT request_id, key_id, endpoint, outcome FROM veil_server.usage_requests")
        return {row[0]: (row[1], row[2], row[3]) for row in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--short-schedule", action="store_true", help="one fault of each kind (the CI run's)")
    parser.add_argument("--per-minute", type=int, default=120, help="the limited key's requests per minute")
    parser.add_argument("--forgetful-redis", action="store_true", help="Redis without persistence (the check fails)")
    parser.add_argument("--json", help="also write the figures to this file")
    options = parser.parse_args()
    schedule = SHORT_SCHEDULE if options.short_schedule else LONG_SCHEDULE
    with (
        tempfile.TemporaryDirectory(prefix="veil-load-") as home,
        cluster(Path(home), per_minute=options.per_minute) as system,
    ):
        report = asyncio.run(run_load(system, clients=options.clients, seconds=options.seconds, schedule=schedule))
    print(report.table())
    if options.json:
        Path(options.json).write_text(json.dumps({"usage": report.usage(), "rss": report.rss,
                                                  "timeline": report.timeline}, default=str))  # fmt: skip
    over = max(report.over_admissions()) > report.per_minute
    return 1 if report.ledger.problems or report.tokens_lost or report.usage()["missing"] or over else 0


if __name__ == "__main__":
    raise SystemExit(main())
