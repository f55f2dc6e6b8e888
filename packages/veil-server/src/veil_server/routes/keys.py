"""The admin API of API keys (scope `admin`), bound to the admin key's tenant:

    POST   /v1/admin/keys          create a key: its full text is in this answer, and nowhere ever again
    GET    /v1/admin/keys          the tenant's keys (revoked ones included, with `revoked_at`)
    GET    /v1/admin/keys/{id}     one key
    DELETE /v1/admin/keys/{id}     revoke it: refused from the next request on, on every replica

A tenant never sees another tenant's keys: their ids answer 404, like ids that do not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from veil_server.access import AccessAuthenticator
from veil_server.auth import Principal
from veil_server.errors import ApiError
from veil_server.keys import ApiKeyRecord, KeyStoreError, check_key_policy
from veil_server.routes import gateway_of, principal
from veil_server.schemas import AUTHENTICATED, error_responses, one_of
from veil_server.settings import SCOPES, KeyLimits, KeyPolicy
from veil_server.state import StateUnavailable

router = APIRouter(tags=["Administration"])

KEY_ERRORS = error_responses(*AUTHENTICATED, 404, e404="`key_not_found` (also another tenant's key)")

T = TypeVar("T")


class KeyCreateRequest(BaseModel):
    """A new key of the caller's tenant."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=100, description="A label for people (not secret, not unique).")
    scopes: list[str] = Field(min_length=1, description="chat, embeddings, anonymize, scan, models, reverse, "
                              "mapping:read, usage, admin", json_schema_extra=one_of(SCOPES))  # fmt: skip
    policy: KeyPolicy = Field(default_factory=KeyPolicy, description="anonymize, mode, allow_opt_out, entities")
    limits: KeyLimits = Field(default_factory=KeyLimits,
                              description="requests_per_minute, requests_per_day, monthly_budget (USD)")  # fmt: skip


class KeyObject(BaseModel):
    object: Literal["api_key"] = "api_key"
    id: str
    name: str | None
    tenant: str
    scopes: list[str]
    policy: KeyPolicy
    limits: KeyLimits
    created: int
    created_by: str | None
    revoked_at: int | None
    redacted_key: str = Field(description="`sk-veil-<id>_…` and the key's last four characters")

    @classmethod
    def of(cls, record: ApiKeyRecord) -> KeyObject:
        return cls(
            id=record.id, name=record.name, tenant=record.tenant, scopes=list(record.scopes), policy=record.policy,
            limits=record.limits, created=record.created, created_by=record.created_by, revoked_at=record.revoked_at,
            redacted_key=record.redacted,
        )  # fmt: skip


class CreatedKeyObject(KeyObject):
    key: str = Field(description="The full API key. Shown once: store it now, it cannot be retrieved again.")


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyObject]


async def in_store(function: Callable[[], T]) -> T:
    """Run a key-store call in a worker thread; its errors as API errors (a store outage: 503)."""
    try:
        return await anyio.to_thread.run_sync(function)
    except KeyStoreError as exc:
        raise ApiError(400, str(exc), param=exc.param, code="invalid_request") from None
    except StateUnavailable:
        raise ApiError(503, "The key store cannot be reached; nothing was changed. Retry later.",
                       code="state_unavailable", headers={"Retry-After": "1"}) from None  # fmt: skip


def not_found() -> ApiError:
    return ApiError(404, "No API key with this id in your tenant.", param="key_id", code="key_not_found")


@router.post("/v1/admin/keys", summary="Create an API key", response_model=CreatedKeyObject,
             responses=error_responses(400, *AUTHENTICATED, 413))  # fmt: skip
async def create_key(
    payload: KeyCreateRequest, request: Request, caller: Annotated[Principal, Depends(principal)]
) -> CreatedKeyObject:
    caller.require("admin")
    gateway = gateway_of(request)
    try:
        policy = check_key_policy(payload.policy, gateway.policy)
    except KeyStoreError as exc:
        raise ApiError(400, str(exc), param=exc.param, code="invalid_request") from None
    created = await in_store(
        lambda: gateway.keys.create(
            tenant=caller.tenant, scopes=payload.scopes, name=payload.name, policy=policy, limits=payload.limits,
            created_by=caller.key_id,
        )
    )  # fmt: skip
    return CreatedKeyObject(**KeyObject.of(created.record).model_dump(), key=created.key)


@router.get("/v1/admin/keys", summary="List the tenant's API keys", response_model=KeyList,
            responses=error_responses(*AUTHENTICATED))  # fmt: skip
async def list_keys(request: Request, caller: Annotated[Principal, Depends(principal)]) -> KeyList:
    caller.require("admin")
    keys = gateway_of(request).keys
    records = await in_store(lambda: keys.list(tenant=caller.tenant))
    return KeyList(data=[KeyObject.of(record) for record in records])


@router.get("/v1/admin/keys/{key_id}", summary="Retrieve an API key", response_model=KeyObject,
            responses=KEY_ERRORS)  # fmt: skip
async def retrieve_key(key_id: str, request: Request, caller: Annotated[Principal, Depends(principal)]) -> KeyObject:
    caller.require("admin")
    keys = gateway_of(request).keys
    record = await in_store(lambda: keys.get(key_id, tenant=caller.tenant))
    if record is None:
        raise not_found()
    return KeyObject.of(record)


@router.delete("/v1/admin/keys/{key_id}", summary="Revoke an API key", response_model=KeyObject,
               responses=KEY_ERRORS)  # fmt: skip
async def revoke_key(key_id: str, request: Request, caller: Annotated[Principal, Depends(principal)]) -> KeyObject:
    caller.require("admin")
    gateway = gateway_of(request)
    record = await in_store(lambda: gateway.keys.revoke(key_id, tenant=caller.tenant))
    if record is None:
        raise not_found()
    if isinstance(gateway.authenticator, AccessAuthenticator):
        gateway.authenticator.forget(record.id)  # this replica refuses it at once, cache or not
    return KeyObject.of(record)
