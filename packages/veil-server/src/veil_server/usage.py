"""Usage accounting: one row per answered request, in the gateway's state database.

A row holds ids and counts only (request id, tenant, key id, model, endpoint, UTC day, prompt and
completion tokens, cost in nano-dollars, outcome), never a word of the request or the answer. The
request id is the primary key: recording the same request twice (a retry after a lost commit
acknowledgement, two replicas …) stores it once. `GET /v1/usage` sums the rows of a tenant.

With SQLite (the default) the rows live in `$VEIL_HOME/server.db`; with `state_url =
"postgresql://…"` every replica writes to the same table, and each request is counted once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from veil_server.errors import listed_names
from veil_server.limits import NANO, month_of
from veil_server.state import StateDB

Outcome = Literal["completed", "cancelled", "failed"]
GROUPS = ("day", "model", "endpoint", "key_id")

_MIGRATION = [
    """CREATE TABLE IF NOT EXISTS usage_requests (
        request_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        key_id TEXT NOT NULL,
        bucket TEXT NOT NULL,
        model TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        day TEXT NOT NULL,
        month INTEGER NOT NULL,
        created BIGINT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cost_nano BIGINT NOT NULL,
        outcome TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS usage_requests_tenant_day ON usage_requests (tenant, day)",
    "CREATE INDEX IF NOT EXISTS usage_requests_bucket_month ON usage_requests (bucket, month)",
]


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One answered request. `bucket` is the limiter's name of the key (budgets are summed by it)."""

    request_id: str
    tenant: str
    key_id: str
    bucket: str
    model: str
    endpoint: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_nano: int = 0
    outcome: Outcome = "completed"
    created: float = 0.0

    def row(self) -> tuple[Any, ...]:
        created = self.created or time.time()
        day = datetime.fromtimestamp(created, UTC).date().isoformat()
        return (self.request_id, self.tenant, self.key_id, self.bucket, self.model, self.endpoint, day,
                month_of(created), int(created), self.prompt_tokens, self.completion_tokens, self.cost_nano,
                self.outcome)  # fmt: skip


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """A tenant's usage between two UTC days (inclusive), optionally filtered, grouped by some of GROUPS."""

    tenant: str
    start: date
    end: date
    model: str | None = None
    endpoint: str | None = None
    key_id: str | None = None
    group_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [group for group in self.group_by if group not in GROUPS]
        if unknown:
            raise ValueError(f"group_by: unknown {listed_names(unknown)}; known: {list(GROUPS)}")
        if self.end < self.start:
            raise ValueError("end is before start")


class UsageStore:
    """The `usage_requests` table of a StateDB. Calls block (run them in a worker thread)."""

    def __init__(self, state: StateDB) -> None:
        self.state = state
        state.migrate("usage", _MIGRATION)

    def record(self, records: Sequence[UsageRecord]) -> int:
        """Store the records not stored yet (by request id); how many were new."""
        added = 0
        with self.state.transaction() as tx:
            if self.state.dialect == "postgresql":
                # Answers wait for this commit (veil_server.meter): make it the commit SQLite's
                # synchronous=NORMAL gives, durable when the gateway dies, without waiting for the
                # WAL's fsync (a crash of PostgreSQL's machine may lose its last fraction of a second).
                tx.execute("SET LOCAL synchronous_commit = off")
            for record in records:
                added += tx.execute(
                    "INSERT INTO usage_requests (request_id, tenant, key_id, bucket, model, endpoint, day, month, "
                    "created, prompt_tokens, completion_tokens, cost_nano, outcome) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING",
                    record.row(),
                )
        return added

    def month_spend(self, bucket: str, now: float | None = None) -> int:
        """A key's spend this calendar month (UTC), in nano-dollars: what budgets start from after a restart."""
        with self.state.transaction() as tx:
            row = tx.fetchone(
                "SELECT COALESCE(SUM(cost_nano), 0) FROM usage_requests WHERE bucket = ? AND month = ?",
                (bucket, month_of(now if now is not None else time.time())),
            )
        return int(row[0]) if row else 0

    def ping(self) -> None:
        with self.state.transaction() as tx:
            tx.fetchone("SELECT 1")

    def query(self, query: UsageQuery) -> list[dict[str, Any]]:
        """One bucket per combination of the group_by columns (one bucket in all without group_by)."""
        where = ["tenant = ?", "day >= ?", "day <= ?"]
        params: list[Any] = [query.tenant, query.start.isoformat(), query.end.isoformat()]
        for column in ("model", "endpoint", "key_id"):
            value = getattr(query, column)
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        groups = list(query.group_by)
        columns = ", ".join([*groups, "COUNT(*)", "COALESCE(SUM(prompt_tokens), 0)",
                             "COALESCE(SUM(completion_tokens), 0)", "COALESCE(SUM(cost_nano), 0)"])  # fmt: skip
        # Column names come from GROUPS (checked in UsageQuery) and this function; values are parameters.
        sql = f"SELECT {columns} FROM usage_requests WHERE {' AND '.join(where)}"  # noqa: S608
        if groups:
            sql += f" GROUP BY {', '.join(groups)} ORDER BY {', '.join(groups)}"
        with self.state.transaction() as tx:
            rows = tx.fetchall(sql, params)
        buckets = []
        for row in rows:
            requests, prompt, completion, cost = (int(value) for value in row[len(groups) :])
            if not groups and requests == 0:
                continue
            bucket: dict[str, Any] = {"object": "usage.bucket", **dict(zip(groups, row[: len(groups)], strict=True))}
            bucket.update(requests=requests, prompt_tokens=prompt, completion_tokens=completion,
                          total_tokens=prompt + completion, cost_usd=cost / NANO)  # fmt: skip
            buckets.append(bucket)
        return buckets
