"""POST /v1/auth/token: a short-lived access token (JWT) for the API key of the request.

    curl -s $VEIL/v1/auth/token -H "Authorization: Bearer $VEIL_KEY" --json '{"scopes": ["chat"], "expires_in": 300}'
    {"access_token": "eyJ…", "token_type": "bearer", "expires_in": 300, "scopes": ["chat"]}

The token is then used like a key (`Authorization: Bearer eyJ…`). It carries the key's scopes or
fewer (`scopes` narrows, never widens) and lives `server.jwt_ttl` seconds at most. Only an API key
gets a token: a token cannot be exchanged for a fresh one, so it cannot outlive its key's revocation.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from veil_server.access import AccessAuthenticator
from veil_server.auth import Principal
from veil_server.errors import ApiError
from veil_server.routes import gateway_of, principal
from veil_server.routes.keys import in_store
from veil_server.schemas import AUTHENTICATED, error_responses, one_of
from veil_server.settings import SCOPES

router = APIRouter(tags=["Authentication"])


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scopes: list[str] | None = Field(default=None, description="A subset of the key's scopes (default: all of them).",
                                     json_schema_extra=one_of(SCOPES))  # fmt: skip
    expires_in: int | None = Field(default=None, ge=1, description="Seconds (default and maximum: `server.jwt_ttl`).")


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int
    scopes: list[str]


@router.post("/v1/auth/token", summary="Exchange an API key for a short-lived access token",
             response_model=TokenResponse, responses=error_responses(400, *AUTHENTICATED, 413))  # fmt: skip
async def issue_token(
    request: Request, caller: Annotated[Principal, Depends(principal)], payload: TokenRequest | None = None
) -> TokenResponse:
    gateway = gateway_of(request)
    authenticator = gateway.authenticator
    if not isinstance(authenticator, AccessAuthenticator):
        raise ApiError(400, "This server's authenticator does not issue access tokens.", code="invalid_request")
    if caller.credential == "open":
        raise ApiError(401, "Access tokens are issued for API keys, and this server has none: create one with "
                       "`veil keys create`.", code="missing_api_key")  # fmt: skip
    if caller.credential != "key":
        raise ApiError(401, "POST /v1/auth/token takes an API key, not an access token.", code="invalid_api_key")
    payload = payload or TokenRequest()
    await in_store(gateway.tokens.secret)  # read from the state database once, then cached
    try:
        issued = gateway.tokens.issue(
            caller, authenticator.source_of(caller), scopes=payload.scopes, expires_in=payload.expires_in
        )
    except PermissionError as exc:
        raise ApiError(403, str(exc), param="scopes", code="insufficient_scope", type="permission_error") from None
    except ValueError as exc:
        param = "expires_in" if "expires_in" in str(exc) else "scopes"
        raise ApiError(400, str(exc), param=param, code="invalid_request") from None
    return TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in, scopes=list(issued.scopes))
