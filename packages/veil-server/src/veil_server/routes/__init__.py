"""HTTP routes, one module per family of endpoints; each is an APIRouter that `app.create_app` mounts."""

from __future__ import annotations

from fastapi import Request

from veil_server.auth import Principal
from veil_server.gateway import Gateway


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def principal(request: Request) -> Principal:
    """The authenticated caller (a FastAPI dependency): 401 before anything else is read."""
    found = await gateway_of(request).authenticator.authenticate(request)
    request.state.principal = found
    return found


def request_size(request: Request) -> int:
    try:
        return int(request.headers.get("content-length") or 0)
    except ValueError:
        return 0
