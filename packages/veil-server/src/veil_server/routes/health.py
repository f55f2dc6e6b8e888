"""GET /healthz (the process answers), /readyz (vault, state database, limits and upstreams reachable),
/metrics (Prometheus)."""

from __future__ import annotations

from typing import Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from veil_server.errors import ApiError
from veil_server.limits import LimitsUnavailable
from veil_server.routes import gateway_of

router = APIRouter(tags=["Operations"])


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str] = Field(description="vault, state, limits, upstream:NAME → `ok` or why not")


READINESS = {"model": Readiness}


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the vault and every upstream answer",
    response_model=None,
    responses={200: {**READINESS, "description": "Ready"}, 503: {**READINESS, "description": "Not ready"}},
)
async def readyz(request: Request) -> Response:
    gateway = gateway_of(request)
    checks: dict[str, Any] = {}
    ready = True

    def vault_check() -> None:
        # A lookup of a token that cannot exist: exercises the backend's connection, reads nothing.
        gateway.veil.vault.lookup(gateway.veil.tenant, "__readyz__", "{{READYZ_1}}")

    try:
        await anyio.to_thread.run_sync(vault_check)
        checks["vault"] = "ok"
    except Exception as exc:
        checks["vault"] = f"unavailable ({type(exc).__name__})"
        ready = False
    try:  # the state database (keys, usage, approvals …) and the limits backend (Redis, when configured)
        await anyio.to_thread.run_sync(gateway.usage.ping)
        checks["state"] = "ok"
    except Exception as exc:
        checks["state"] = f"unavailable ({type(exc).__name__})"
        ready = False
    try:
        await gateway.limiter.ping()
        checks["limits"] = "ok"
    except LimitsUnavailable:
        checks["limits"] = "unavailable (Redis)"
        ready = False
    for name, provider in gateway.providers.items():
        try:
            status = await provider.status_of("/models")
            checks[f"upstream:{name}"] = "ok" if status < 500 else f"status {status}"
            ready = ready and status < 500
        except ApiError as exc:
            checks[f"upstream:{name}"] = exc.code or "unavailable"
            ready = False
    return JSONResponse({"status": "ready" if ready else "unavailable", "checks": checks},
                        status_code=200 if ready else 503)  # fmt: skip


@router.get(
    "/metrics", summary="Prometheus metrics (no personal data in labels)", response_class=Response,
    responses={200: {"description": "The Prometheus text format",
                     "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}},
)  # fmt: skip
async def metrics(request: Request) -> Response:
    return Response(gateway_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
