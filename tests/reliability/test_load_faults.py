"""Load with faults: two `veil serve` replicas on real PostgreSQL and Redis, under concurrent
clients, while a replica is killed (SIGKILL) and started again, Redis is killed and started
again, and the upstream turns slow (the gateway's 504) and failing (500/503, invalid answers,
dropped connections). Afterwards, with everything back up:

- every token any client received restores, on both replicas;
- every request a client saw complete has exactly one usage row, counted as completed; a row
  counted as completed that no client saw complete can only be a request interrupted by a kill;
- the rate-limited key was never admitted more than its limit in any 60 s window (from the
  clients' side, and in the limiter's own log);
- every answer came within the client's timeout; every failure was an OpenAI error object; a
  client mistake was a 4xx, never a 5xx;
- each replica's memory (RSS) did not grow beyond the bound below.

The short run (20 clients, 12 s, one fault of each kind) is part of the normal suite; the long
one (200 clients, 60 s, the replicas killed in turn) runs with --runslow. The figures of a long
run are in docs/reliability.md ("Load with faults"); the same run from the command line:
`uv run python tests/reliability/load_run.py --clients 200 --seconds 60`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from load_clients import CLIENT_TIMEOUT
from load_cluster import cluster
from load_run import LONG_SCHEDULE, SHORT_SCHEDULE, Report, run_load

RSS_GROWTH_MIB = 32
RSS_GROWTH_SHARE = 0.25
"""A replica's RSS at the end may exceed its RSS once warm by at most max(32 MiB, 25 %)."""


Schedule = tuple[tuple[float, str], ...]


def run(home: Path, *, clients: int, seconds: float, per_minute: int, schedule: Schedule) -> Report:
    with cluster(home, per_minute=per_minute) as system:
        report = asyncio.run(run_load(system, clients=clients, seconds=seconds, schedule=schedule))
    print(report.table())  # shown with -s, and with the failure
    return report


def check(report: Report) -> None:
    table = report.table()
    assert report.ledger.problems == [], table
    assert report.tokens_checked > 0 and report.tokens_lost == [], table
    usage = report.usage()
    assert usage["missing"] == [] and usage["not_counted_as_completed"] == [], table
    assert usage["counted_but_not_completed"] <= usage["interrupted"], table
    rows_of_key = sum(1 for key, _, _ in report.rows.values() if key == "sk-load")
    assert set(report.usage_api.values()) == {rows_of_key}, table  # both replicas report the one table
    worst, logged = report.over_admissions()
    assert worst <= report.per_minute and logged <= report.per_minute, table
    assert report.latency() < CLIENT_TIMEOUT, table
    for name, (warm, end) in report.memory().items():
        assert end - warm <= max(RSS_GROWTH_MIB * 1024, RSS_GROWTH_SHARE * warm), f"{name}: RSS grew\n{table}"
    # Each fault happened and was seen by the clients (else the run proves nothing about it).
    results = {(call.result, call.status, call.code) for call in report.ledger.calls}
    assert any(result in ("refused", "interrupted") for result, _, _ in results), table
    assert ("http_error", 504, "upstream_timeout") in results, table
    assert any(status in (500, 502, 503) and code != "limits_unavailable" for _, status, code in results), table
    assert ("http_error", 429, "rate_limit_exceeded") in results, table
    assert len(report.ledger.completed()) > 0


def test_a_short_load_with_every_fault_loses_no_token_no_usage_and_admits_no_more_than_the_limit(
    tmp_path: Path,
) -> None:
    check(run(tmp_path, clients=20, seconds=12, per_minute=6, schedule=SHORT_SCHEDULE))


@pytest.mark.slow
def test_two_hundred_clients_for_a_minute_with_faults_lose_nothing(tmp_path: Path) -> None:
    check(run(tmp_path, clients=200, seconds=60, per_minute=120, schedule=LONG_SCHEDULE))
