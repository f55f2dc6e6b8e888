"""OpenAI-style error objects: every error the server returns has this one shape.

    {"error": {"message": "...", "type": "invalid_request_error", "param": "model", "code": "invalid_model"}}

`ApiError` is raised anywhere in the server; `install_error_handlers` turns it, FastAPI's
validation errors (never the default 422 body), Starlette's 404/405, and any unexpected exception
(never a stack trace) into that shape. Messages never contain the request's text: they carry
parameter names, model names, token names, counts and a request id.

Status codes and types follow the OpenAI API, so that the official SDKs raise their usual
exceptions (`BadRequestError`, `AuthenticationError`, `RateLimitError`, `InternalServerError` …).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from veil.errors import ApprovalError, ConfigError, DetectionError, InputError, TokenNotFound, VaultError

log = logging.getLogger("veil_server")

# Status → the OpenAI error type clients expect for it.
_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_type_for(status: int) -> str:
    if status in _TYPES:
        return _TYPES[status]
    return "server_error" if status >= 500 else "invalid_request_error"


class ApiError(Exception):
    """An error answered to the client as an OpenAI error object with an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or error_type_for(status)
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, code=self.code, param=self.param)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(message: str, *, type: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def invalid_request(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def from_veil_error(exc: Exception) -> ApiError:
    """A veil core error as an API error. Anonymization that cannot run fails closed: nothing went upstream."""
    if isinstance(exc, TokenNotFound):
        return ApiError(400, str(exc), code="token_not_found")
    if isinstance(exc, VaultError):
        # VaultUnavailable, IntegrityError, KeyUnavailable: the request is refused, not degraded.
        return ApiError(
            503,
            f"the vault cannot be used ({type(exc).__name__}); the request was refused and nothing was sent "
            "to the model. Retry later.",
            code="vault_unavailable",
            headers={"Retry-After": "1"},
        )
    if isinstance(exc, DetectionError):
        return ApiError(
            503,
            "personal data detection failed; the request was refused and nothing was sent to the model",
            code="anonymization_failed",
        )
    if isinstance(exc, ApprovalError):
        return ApiError(403, str(exc), code="approval_required")
    if isinstance(exc, InputError | ConfigError):
        return ApiError(400, str(exc), code="invalid_request")
    return ApiError(500, "internal error in veil", code="internal_error")


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "the request body is invalid", None
    first = errors[0]
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(location) or None
    kind = first.get("type", "")
    if kind == "json_invalid" or (param is None and kind in ("model_attributes_type", "dict_type")):
        return (
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload.)",
            None,
        )
    if kind == "missing":
        return f"Missing required parameter: '{param}'.", param
    if kind == "extra_forbidden":
        return f"Unrecognized request argument supplied: {param}", param
    # pydantic's message says what was expected; the offending input itself is never echoed.
    return f"Invalid value for '{param}': {first.get('msg', 'invalid')}.", param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return ApiError(400, message, param=param, code="invalid_request").response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"Unknown request URL: {request.method} {request.url.path}."
            return ApiError(404, message, code="unknown_url").response()
        if exc.status_code == 405:
            # Starlette's 405 carries the `Allow` header the client needs (RFC 9110): keep it.
            message = f"Method {request.method} is not allowed on {request.url.path}."
            return ApiError(405, message, code="method_not_allowed", headers=dict(exc.headers or {})).response()
        return ApiError(exc.status_code, str(exc.detail), headers=dict(exc.headers or {})).response()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        # The type and the incident id only: an exception's message may quote the request's text.
        log.error("unexpected %s while serving %s (incident %s)", type(exc).__name__, request.url.path, incident)
        return ApiError(500, f"internal server error (incident {incident})", code="internal_error").response()
