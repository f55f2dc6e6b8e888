"""Dual-control reversal: reveal a stored scope's mapping only with approvals from other admins.

    POST /v1/approvals                    (scope reverse) ask to reveal a scope, with a reason → request id
    GET  /v1/approvals                    (scope admin)   the tenant's requests, newest first
    POST /v1/approvals/{id}/approve       (scope admin)   approve: a one-time approval token, for the requester
    POST /v1/anonymization/reverse        (scope reverse) {"request_id": …} + X-Approval-Token headers → mapping

Who is who: the caller's key id. Approvers are admin keys of the request's tenant (or those of
`server.reversal.approvers`), never the requester, each once. Tokens go to the requester out of
band; the requester sends them, one `X-Approval-Token` header per approver (or one header with
comma-separated tokens). Each token is single-use and expires; the request too. Every step and
every refusal is written to the audit log (ids and counts only). The state database unreachable
is 503: nothing is revealed.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from veil.errors import ApprovalError
from veil_server.auth import Principal
from veil_server.errors import ApiError
from veil_server.routes import gateway_of, principal
from veil_server.routes.webhooks import run_state
from veil_server.schemas import AUTHENTICATED, SCOPE_PATTERN, error_responses
from veil_server.settings import valid_scope_name

router = APIRouter(tags=["reversal"])

APPROVAL_HEADER = "x-approval-token"
_MAX_TOKENS = 20
_MAX_TOKEN_CHARS = 128

# ApprovalError.code → (HTTP status, error code)
_REFUSALS = {
    "not_found": (404, "approval_request_not_found"),
    "self_approval": (403, "self_approval"),
    "not_eligible": (403, "approver_not_eligible"),
    "not_requester": (403, "not_requester"),
    "insufficient_approvals": (403, "insufficient_approvals"),
    "already_approved": (409, "already_approved"),
    "already_revealed": (409, "approval_request_used"),
    "expired": (409, "approval_request_expired"),
    "invalid_request": (400, "invalid_request"),
}


def refusal(exc: ApprovalError, *, hint: str = "") -> ApiError:
    status, code = _REFUSALS.get(exc.code, (403, "approval_required"))
    return ApiError(status, f"{exc}{hint}", code=code)


class ApprovalRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: str = Field(max_length=200, description="The scope (conversation or collection) of your tenant to reveal.",
                       json_schema_extra={"pattern": SCOPE_PATTERN})  # fmt: skip
    reason: str = Field(min_length=1, max_length=1000, description="Why (a ticket or case number; sealed at rest).")


class ReverseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(max_length=100, description="The approved request (from POST /v1/approvals).")


class ApprovalRequestObject(BaseModel):
    """A reveal request as an admin sees it: never a token or a value."""

    id: str
    object: Literal["approval_request"] = "approval_request"
    scope: str
    requester: str
    reason: str
    required: int
    approvals: int
    approvers: list[str]
    status: Literal["pending", "approved", "revealed", "expired"]
    created: int
    expires_at: int


class ApprovalRequestList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ApprovalRequestObject]


class Approval(BaseModel):
    id: str
    object: Literal["approval"] = "approval"
    approver: str
    approval_token: str = Field(description="Single-use; the approver hands it to the requester out of band.")
    approvals: int
    required: int


class RevealedMapping(BaseModel):
    object: Literal["reverse"] = "reverse"
    request_id: str
    scope: str
    mapping: dict[str, str] = Field(description="token → value")
    count: int


_REFUSED = {
    "e403": "`insufficient_scope`, `self_approval`, `approver_not_eligible`, `not_requester`, "
    "`insufficient_approvals` or `approval_required`",
    "e404": "`approval_request_not_found` (also another tenant's request)",
    "e409": "`already_approved`, `approval_request_used` or `approval_request_expired`",
}


def approval_tokens(request: Request) -> list[str]:
    """Every X-Approval-Token value: repeated headers and comma-separated lists, blanks dropped."""
    tokens: list[str] = []
    for value in request.headers.getlist(APPROVAL_HEADER):
        tokens += [part.strip() for part in value.split(",") if part.strip()]
    if len(tokens) > _MAX_TOKENS or any(len(token) > _MAX_TOKEN_CHARS for token in tokens):
        raise ApiError(400, f"at most {_MAX_TOKENS} approval tokens of at most {_MAX_TOKEN_CHARS} characters",
                       param="X-Approval-Token", code="invalid_approval_token")  # fmt: skip
    return tokens


@router.post("/v1/approvals", summary="Ask to reveal a scope (dual control)", status_code=201,
             responses={201: {"model": ApprovalRequestObject, "description": "The request, pending"},
                        **error_responses(400, *AUTHENTICATED, 404, 409, 413, **_REFUSED)})  # fmt: skip
async def create_approval_request(
    payload: ApprovalRequestBody, request: Request, caller: Annotated[Principal, Depends(principal)]
) -> JSONResponse:
    caller.require("reverse")
    if not valid_scope_name(payload.scope):
        raise ApiError(400, "scope: 1 to 200 letters, digits and . _ : @ / - only", param="scope",
                       code="invalid_scope")  # fmt: skip
    reversal = gateway_of(request).reversal
    try:
        created = await run_state(
            lambda: reversal.control.request(
                requester=caller.key_id, tenant=caller.tenant, scope=payload.scope, reason=payload.reason
            )
        )
    except ApprovalError as exc:
        raise refusal(exc) from None
    return JSONResponse(reversal.describe(created, time.time()), status_code=201)


@router.get("/v1/approvals", summary="The tenant's reveal requests",
            responses={200: {"model": ApprovalRequestList, "description": "Newest first"},
                       **error_responses(400, *AUTHENTICATED)})  # fmt: skip
async def list_approval_requests(
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    caller.require("admin")
    reversal = gateway_of(request).reversal
    found = await run_state(lambda: reversal.store.requests(caller.tenant, limit=limit))
    now = time.time()
    return {"object": "list", "data": [reversal.describe(item, now) for item in found]}


@router.post("/v1/approvals/{request_id}/approve", summary="Approve a reveal request",
             responses={200: {"model": Approval, "description": "The approval token, for the requester"},
                        **error_responses(400, *AUTHENTICATED, 404, 409, **_REFUSED)})  # fmt: skip
async def approve_request(
    request_id: str, request: Request, caller: Annotated[Principal, Depends(principal)]
) -> dict[str, Any]:
    caller.require("admin")
    reversal = gateway_of(request).reversal

    def approve() -> tuple[str, int, int]:
        reversal.check_tenant(caller.tenant, request_id, actor=caller.key_id, step="approve")
        token = reversal.control.approve(request_id, approver=caller.key_id)
        stored = reversal.store.load(request_id)
        assert stored is not None
        return token, len(stored.approvals), stored.required

    try:
        token, approvals, required = await run_state(approve)
    except ApprovalError as exc:
        raise refusal(exc) from None
    return {
        "id": request_id, "object": "approval", "approver": caller.key_id, "approval_token": token,
        "approvals": approvals, "required": required,
    }  # fmt: skip


@router.post(
    "/v1/anonymization/reverse", summary="Reveal an approved scope's mapping",
    responses={200: {"model": RevealedMapping, "description": "The scope's mapping"},
               **error_responses(400, *AUTHENTICATED, 404, 409, 413, **_REFUSED)},
    openapi_extra={"parameters": [{
        "name": "X-Approval-Token", "in": "header", "required": False, "schema": {"type": "string"},
        "description": "The approvers' tokens: one header each, or one header with comma-separated tokens.",
    }]},
)  # fmt: skip
async def reverse(payload: ReverseBody, request: Request, caller: Annotated[Principal, Depends(principal)]) -> Any:
    caller.require("reverse")
    tokens = approval_tokens(request)
    reversal = gateway_of(request).reversal
    scope_of: dict[str, str] = {}

    def reveal() -> dict[str, str]:
        found = reversal.check_tenant(caller.tenant, payload.request_id, actor=caller.key_id, step="reveal")
        scope_of["scope"] = found.scope
        return reversal.control.reveal(payload.request_id, requester=caller.key_id, approval_tokens=tokens)

    try:
        mapping = await run_state(reveal)
    except ApprovalError as exc:
        hint = "" if tokens else " (send the approvers' tokens in X-Approval-Token headers)"
        raise refusal(exc, hint=hint) from None
    return {
        "object": "reverse", "request_id": payload.request_id, "scope": scope_of["scope"], "mapping": mapping,
        "count": len(mapping),
    }  # fmt: skip
