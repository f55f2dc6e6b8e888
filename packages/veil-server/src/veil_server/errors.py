"""OpenAI-style error objects: every error the server returns has this one shape.

    {"error": {"message": "...", "type": "invalid_request_error", "param": "model", "code": "invalid_model"}}

`ApiError` is raised anywhere in the server; `install_error_handlers` turns it, FastAPI's
validation errors (never the default 422 body), Starlette's 404/405, and any unexpected exception
(never a stack trace) into that shape. Messages never contain the request's text: they carry
parameter names, model names, token names, counts and a request id. A name the client wrote (a
model, an id, a path, a parameter) is repeated only when it has the shape of such a name
(`echo_name`): a client's mistake can put personal data where a name goes, and an error message is
logged by clients, proxies and support tickets.

Status codes and types follow the OpenAI API, so that the official SDKs raise their usual
exceptions (`BadRequestError`, `AuthenticationError`, `RateLimitError`, `InternalServerError` …).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from veil.errors import ApprovalError, ConfigError, DetectionError, InputError, TokenNotFound, VaultError
from veil_server.metrics import endpoint_label

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


_NAME_SHAPED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}")
_PATH_SHAPED = re.compile(r"(?:/[A-Za-z0-9._:-]{1,100}){0,12}/?")
_PARAMETER_SHAPED = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_LONG_NUMBER = re.compile(r"[0-9]{7}")


def echo_name(value: object, otherwise: str, *, path: bool = False) -> str:
    """`value` in backquotes when it has the shape of a name (of a model, an id; a URL path with
    `path`) and holds no long number, else `otherwise`."""
    shape = _PATH_SHAPED if path else _NAME_SHAPED
    if isinstance(value, str) and shape.fullmatch(value) and not _LONG_NUMBER.search(value):
        return f"`{value}`"
    return otherwise


def listed_names(values: Iterable[object]) -> str:
    """Unknown names for an error message: those shaped like a name, quoted; the others counted."""
    given = list(values)
    shaped = [v for v in given if isinstance(v, str) and _NAME_SHAPED.fullmatch(v) and not _LONG_NUMBER.search(v)]
    shown = ", ".join(f"'{name}'" for name in shaped)
    others = len(given) - len(shaped)
    if others:
        shown += f"{' and ' if shown else ''}{others} value(s) not shaped like a name"
    return shown


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
    location = _location(first.get("loc", ()))
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
        if len(location) < len(_location(first.get("loc", ()), complete=True)):
            return "Unrecognized request argument supplied (its name is not a parameter's).", param
        return f"Unrecognized request argument supplied: {param}", param
    # pydantic's message says what was expected; the offending input itself is never echoed.
    where = f"for '{param}'" if param else "in the request body"
    return f"Invalid value {where}: {first.get('msg', 'invalid')}.", param


def _location(loc: Any, *, complete: bool = False) -> list[str]:
    """Where pydantic found the error, up to the first part that is neither a position nor shaped
    like a parameter's name: a dict key there (a mapping's token, a value written in its place)
    is the client's data, never repeated (`complete`: every part, to tell whether one was cut)."""
    parts: list[str] = []
    for part in loc:
        if part == "body" and not parts:
            continue
        if isinstance(part, int) or complete or _PARAMETER_SHAPED.fullmatch(str(part)):
            parts.append(str(part))
        else:
            break
    return parts


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
        method = request.method if _NAME_SHAPED.fullmatch(request.method) else "(method)"
        url = echo_name(request.url.path, "", path=True).strip("`") or "(a path that does not look like one)"
        if exc.status_code == 404:
            message = f"Unknown request URL: {method} {url}."
            return ApiError(404, message, code="unknown_url").response()
        if exc.status_code == 405:
            # Starlette's 405 carries the `Allow` header the client needs (RFC 9110): keep it.
            message = f"Method {method} is not allowed on {url}."
            return ApiError(405, message, code="method_not_allowed", headers=dict(exc.headers or {})).response()
        return ApiError(exc.status_code, str(exc.detail), headers=dict(exc.headers or {})).response()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        # The type and the incident id only: an exception's message may quote the request's text.
        log.error("unexpected %s while serving %s (incident %s)", type(exc).__name__, endpoint_label(request.url.path),
                  incident)  # fmt: skip
        return ApiError(500, f"internal server error (incident {incident})", code="internal_error").response()
