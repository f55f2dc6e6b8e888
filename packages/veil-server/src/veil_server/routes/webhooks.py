"""Admin API of webhook subscriptions (scope `admin`, the caller's tenant only).

    POST   /v1/admin/webhooks                      subscribe a URL to events; the secret is shown once
    GET    /v1/admin/webhooks                      the tenant's subscriptions (never a secret)
    GET    /v1/admin/webhooks/{id}                 one subscription
    DELETE /v1/admin/webhooks/{id}                 unsubscribe (its pending deliveries and log go too)
    GET    /v1/admin/webhooks/{id}/deliveries      the delivery log: status, attempts, codes, latency
    POST   /v1/admin/webhooks/{id}/ping            send a signed `webhook.ping` now
    POST   /v1/admin/webhooks/{id}/rotate-secret   a new secret; the old one still signs for a grace period

Another tenant's subscription id answers 404, like an unknown one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from veil.errors import VaultError
from veil_server.auth import Principal
from veil_server.errors import ApiError, echo_name
from veil_server.events import EVENT_NAMES
from veil_server.routes import gateway_of, principal
from veil_server.schemas import AUTHENTICATED, error_responses, one_of
from veil_server.state import StateUnavailable
from veil_server.webhooks import WebhookError, check_url

router = APIRouter(tags=["admin"])

T = TypeVar("T")


def state_unavailable() -> ApiError:
    return ApiError(
        503, "the server's state database is unavailable; nothing was changed. Retry later.",
        code="state_unavailable", headers={"Retry-After": "1"},
    )  # fmt: skip


async def run_state(function: Callable[[], T]) -> T:
    """Run a state-database call in a worker thread; an unreachable database (or vault key
    store) is 503 `state_unavailable`: fail closed, never a half-done change reported as done."""
    try:
        return await anyio.to_thread.run_sync(function)
    except (StateUnavailable, sqlite3.OperationalError, sqlite3.DatabaseError):
        raise state_unavailable() from None
    except VaultError as exc:
        raise ApiError(503, f"the vault is unavailable ({type(exc).__name__}); retry later",
                       code="vault_unavailable", headers={"Retry-After": "1"}) from None  # fmt: skip
    except Exception as exc:
        if _is_postgres_error(exc):
            raise state_unavailable() from None
        raise


def _is_postgres_error(exc: Exception) -> bool:
    try:
        import psycopg  # noqa: PLC0415
    except ImportError:
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


class SubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="An http(s) URL that receives POSTed events.", max_length=2048)
    events: list[str] = Field(min_length=1, description=f"Any of {sorted(EVENT_NAMES)}.",
                              json_schema_extra=one_of(EVENT_NAMES))  # fmt: skip
    description: str | None = Field(None, max_length=200)


class Subscription(BaseModel):
    object: Literal["webhook_subscription"] = "webhook_subscription"
    id: str
    url: str
    events: list[str]
    description: str | None
    created_by: str | None
    created: int


class CreatedSubscription(Subscription):
    secret: str = Field(description="The signing secret. Shown once: store it now.")


class SubscriptionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Subscription]


class DeletedSubscription(BaseModel):
    id: str
    object: Literal["webhook_subscription"] = "webhook_subscription"
    deleted: bool


class DeliveryAttempt(BaseModel):
    attempt: int
    time: float
    status_code: int | None
    error: str | None
    latency_ms: float
    next_attempt: float | None


class DeliveryRecord(BaseModel):
    object: Literal["webhook_delivery"] = "webhook_delivery"
    id: str
    event_id: str
    event: str
    status: str = Field(description="pending, delivered or failed")
    attempts: int
    next_attempt: float | None
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: float | None
    created: float
    updated: float
    log: list[DeliveryAttempt]


class DeliveryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[DeliveryRecord]


class PingAccepted(BaseModel):
    object: Literal["webhook_delivery"] = "webhook_delivery"
    id: str
    status: Literal["pending"] = "pending"


class RotatedSecret(BaseModel):
    id: str
    object: Literal["webhook_subscription"] = "webhook_subscription"
    secret: str = Field(description="The new signing secret. Shown once.")
    previous_secret_expires: int = Field(description="Unix time until which the old secret also signs.")


LIST_ERRORS = error_responses(*AUTHENTICATED)
ONE_ERRORS = error_responses(*AUTHENTICATED, 404, e404="`webhook_not_found` (also another tenant's subscription)")


def _not_found(subscription_id: str) -> ApiError:
    shown = echo_name(subscription_id, "with this id")
    return ApiError(404, f"No webhook subscription {shown} in this tenant.", param="id",
                    code="webhook_not_found")  # fmt: skip


def _admin(caller: Principal) -> Principal:
    caller.require("admin")
    return caller


@router.post("/v1/admin/webhooks", summary="Subscribe a URL to events", status_code=201,
             responses={201: {"model": CreatedSubscription, "description": "The subscription, with its secret"},
                        **error_responses(400, *AUTHENTICATED, 413)})  # fmt: skip
async def create_subscription(
    payload: SubscriptionRequest, request: Request, caller: Annotated[Principal, Depends(principal)]
) -> JSONResponse:
    _admin(caller)
    gateway = gateway_of(request)
    try:
        url = check_url(payload.url, allow_private=gateway.settings.server.webhooks.allow_private_addresses)
    except WebhookError as exc:
        raise ApiError(400, str(exc), param="url", code="invalid_webhook_url") from None
    store = gateway.webhooks.store
    try:
        subscription, secret = await run_state(
            lambda: store.create(
                caller.tenant, url, payload.events, description=payload.description, created_by=caller.key_id
            )
        )
    except WebhookError as exc:
        raise ApiError(400, str(exc), param="events" if "events" in str(exc) else None,
                       code="invalid_webhook") from None  # fmt: skip
    # The secret is in this answer only: the server keeps it sealed and never shows it again.
    return JSONResponse({**subscription.to_dict(), "secret": secret}, status_code=201)


@router.get(
    "/v1/admin/webhooks",
    summary="List the tenant's webhook subscriptions",
    responses={200: {"model": SubscriptionList, "description": "The subscriptions"}, **LIST_ERRORS},
)
async def list_subscriptions(request: Request, caller: Annotated[Principal, Depends(principal)]) -> dict[str, Any]:
    _admin(caller)
    store = gateway_of(request).webhooks.store
    found = await run_state(lambda: store.subscriptions(caller.tenant))
    return {"object": "list", "data": [subscription.to_dict() for subscription in found]}


@router.get(
    "/v1/admin/webhooks/{subscription_id}",
    summary="One webhook subscription",
    responses={200: {"model": Subscription, "description": "The subscription"}, **ONE_ERRORS},
)
async def get_subscription(
    subscription_id: str, request: Request, caller: Annotated[Principal, Depends(principal)]
) -> dict[str, Any]:
    _admin(caller)
    store = gateway_of(request).webhooks.store
    found = await run_state(lambda: store.get(caller.tenant, subscription_id))
    if found is None:
        raise _not_found(subscription_id)
    return found.to_dict()


@router.delete(
    "/v1/admin/webhooks/{subscription_id}",
    summary="Unsubscribe",
    responses={200: {"model": DeletedSubscription, "description": "Deleted"}, **ONE_ERRORS},
)
async def delete_subscription(
    subscription_id: str, request: Request, caller: Annotated[Principal, Depends(principal)]
) -> dict[str, Any]:
    _admin(caller)
    store = gateway_of(request).webhooks.store
    if not await run_state(lambda: store.delete(caller.tenant, subscription_id)):
        raise _not_found(subscription_id)
    return {"id": subscription_id, "object": "webhook_subscription", "deleted": True}


@router.get(
    "/v1/admin/webhooks/{subscription_id}/deliveries",
    summary="The delivery log of a subscription (newest first)",
    responses={
        200: {"model": DeliveryList, "description": "The deliveries"},
        **error_responses(400, *AUTHENTICATED, 404, e404=ONE_ERRORS[404]["description"]),
    },
)
async def list_deliveries(
    subscription_id: str,
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    _admin(caller)
    store = gateway_of(request).webhooks.store

    def read() -> list[dict[str, Any]] | None:
        if store.get(caller.tenant, subscription_id) is None:
            return None
        return store.deliveries(caller.tenant, subscription_id, limit=limit)

    found = await run_state(read)
    if found is None:
        raise _not_found(subscription_id)
    return {"object": "list", "data": found}


@router.post(
    "/v1/admin/webhooks/{subscription_id}/ping",
    summary="Send a signed webhook.ping to the subscription now",
    status_code=202,
    responses={202: {"model": PingAccepted, "description": "The ping is queued"}, **ONE_ERRORS},
)
async def ping_subscription(
    subscription_id: str, request: Request, caller: Annotated[Principal, Depends(principal)]
) -> JSONResponse:
    _admin(caller)
    gateway = gateway_of(request)
    store = gateway.webhooks.store

    def ping() -> str | None:
        found = store.get(caller.tenant, subscription_id)
        return store.ping(found) if found is not None else None

    delivery_id = await run_state(ping)
    if delivery_id is None:
        raise _not_found(subscription_id)
    gateway.webhooks.wake()
    return JSONResponse({"object": "webhook_delivery", "id": delivery_id, "status": "pending"}, status_code=202)


class RotateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: float = Field(
        default=86400, ge=0, le=30 * 86400, description="How long deliveries are also signed with the old secret."
    )


@router.post(
    "/v1/admin/webhooks/{subscription_id}/rotate-secret",
    summary="Rotate a subscription's signing secret (the new one is shown once)",
    responses={
        200: {"model": RotatedSecret, "description": "The new secret"},
        **error_responses(400, *AUTHENTICATED, 404, 413, e404=ONE_ERRORS[404]["description"]),
    },
)
async def rotate_secret(
    subscription_id: str,
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    payload: RotateRequest | None = None,
) -> dict[str, Any]:
    _admin(caller)
    grace = (payload or RotateRequest()).grace_seconds
    store = gateway_of(request).webhooks.store
    rotated = await run_state(lambda: store.rotate_secret(caller.tenant, subscription_id, grace=grace))
    if rotated is None:
        raise _not_found(subscription_id)
    secret, until = rotated
    return {"id": subscription_id, "object": "webhook_subscription", "secret": secret,
            "previous_secret_expires": int(until)}  # fmt: skip
