"""GET /v1/usage: requests, tokens and cost of the caller's tenant (scope `usage`).

    GET /v1/usage?start=2026-12-01&end=2026-12-31&model=gpt-4o-mini&endpoint=/v1/chat/completions&group_by=day,model

Dates are UTC days, both included (default: this month so far). A tenant sees its own usage
only, whatever its scopes: the tenant comes from the key, never from the query.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from veil_server.auth import Principal
from veil_server.errors import ApiError
from veil_server.routes import gateway_of, principal
from veil_server.schemas import AUTHENTICATED, error_responses
from veil_server.state import StateUnavailable
from veil_server.usage import GROUPS, UsageQuery

router = APIRouter(tags=["veil"])


class UsageBucket(BaseModel):
    object: str = "usage.bucket"
    day: str | None = None
    model: str | None = None
    endpoint: str | None = None
    key_id: str | None = None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float = Field(description="US dollars, from each model's `price` (0 for models without one).")


class UsageResponse(BaseModel):
    object: str = "list"
    tenant: str
    start: date
    end: date
    group_by: list[str]
    data: list[UsageBucket]
    total: UsageBucket


def _day(value: str | None, param: str, default: date) -> date:
    if value is None:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"{param}: a date as YYYY-MM-DD (UTC)", param=param, code="invalid_request") from None


@router.get(
    "/v1/usage",
    summary="Usage of the caller's tenant: requests, tokens, cost",
    response_model=UsageResponse,
    responses=error_responses(400, *AUTHENTICATED),
)
async def get_usage(
    *,
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    start: Annotated[str | None, Query(description="First UTC day, YYYY-MM-DD (default: the 1st of the month)")] = None,
    end: Annotated[str | None, Query(description="Last UTC day, included (default: today)")] = None,
    model: str | None = None,
    endpoint: str | None = None,
    key_id: str | None = None,
    group_by: Annotated[str | None, Query(description=f"Comma-separated, of {', '.join(GROUPS)}")] = None,
) -> UsageResponse:
    caller.require("usage")
    gateway = gateway_of(request)
    today = datetime.now(UTC).date()
    groups = tuple(dict.fromkeys(part.strip() for part in (group_by or "").split(",") if part.strip()))
    try:
        query = UsageQuery(
            tenant=caller.tenant, start=_day(start, "start", today.replace(day=1)), end=_day(end, "end", today),
            model=model, endpoint=endpoint, key_id=key_id, group_by=groups,
        )  # fmt: skip
    except ValueError as exc:
        raise ApiError(400, str(exc), param="group_by" if "group_by" in str(exc) else "end",
                       code="invalid_request") from None  # fmt: skip
    await gateway.meter.flush()  # this replica's queued rows first (503 if the database is down)
    try:
        rows = await anyio.to_thread.run_sync(gateway.usage.query, query)
        totals = await anyio.to_thread.run_sync(gateway.usage.query, replace(query, group_by=()))
    except StateUnavailable as exc:
        raise ApiError(503, f"usage cannot be read: {exc}. Retry later.", code="state_unavailable",
                       headers={"Retry-After": "1"}) from None  # fmt: skip
    empty = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cost_usd": 0.0}
    return UsageResponse(
        tenant=caller.tenant, start=query.start, end=query.end, group_by=list(groups),
        data=[UsageBucket(**row) for row in rows], total=UsageBucket(**(totals[0] if totals else empty)),
    )  # fmt: skip
