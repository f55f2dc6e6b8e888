"""The outermost ASGI layer: body size limit (413), per-request metrics, the access log, and a
last-resort catch that answers an OpenAI error object instead of a stack trace (and logs no
request text).

The access log (logger `veil_server.access`, INFO) names the route's template
(`/v1/models/{model:path}`), never the URL the client sent: a path or a query string can carry
personal data. No client address either. `veil serve` turns uvicorn's own access log off."""

from __future__ import annotations

import json
import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from veil_server.errors import ApiError
from veil_server.meter import HEADERS_SCOPE_KEY
from veil_server.metrics import Metrics, endpoint_label

log = logging.getLogger("veil_server")
access_log = logging.getLogger("veil_server.access")


class GuardMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: Metrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    def _too_large(self) -> ApiError:
        return ApiError(413, f"Request body too large: the limit is {self.max_body_bytes} bytes.",
                        code="request_too_large")  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        endpoint = endpoint_label(scope.get("path", ""))
        status = {"code": 500, "started": False}
        limit = self.max_body_bytes

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = scope.get(HEADERS_SCOPE_KEY)
                if extra:  # x-request-id and x-ratelimit-* of an admitted request (veil_server.meter)
                    message["headers"] = [*message.get("headers", ()),
                                          *((k.encode(), v.encode()) for k, v in extra.items())]  # fmt: skip
                status["code"] = message["status"]
                status["started"] = True
                self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
            await send(message)

        async def answer(error: ApiError) -> None:
            body = json.dumps(error.body()).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
            await send_wrapper({"type": "http.response.start", "status": error.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        length = _content_length(scope)
        try:
            if length is not None and length > limit:
                await answer(self._too_large())
                return
            if length is None and scope.get("method") in ("POST", "PUT", "PATCH"):
                # A chunked body: read it here, up to the limit, then hand it on in one piece.
                body = bytearray()
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return  # the client left before sending its body
                    body += message.get("body", b"")
                    if len(body) > limit:
                        await answer(self._too_large())
                        return
                    if not message.get("more_body", False):
                        break
                receive = _replay(bytes(body), receive)
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            incident = uuid.uuid4().hex[:12]
            log.error("unexpected %s on %s (incident %s)", type(exc).__name__, endpoint, incident)
            if not status["started"]:
                await answer(ApiError(500, f"internal server error (incident {incident})", code="internal_error"))
        finally:
            method = scope.get("method", "")
            self.metrics.requests.labels(endpoint, method, str(status["code"])).inc()
            if access_log.isEnabledFor(logging.INFO):
                request_id = (scope.get(HEADERS_SCOPE_KEY) or {}).get("x-request-id", "-")
                access_log.info("%s %s %d %.1f ms %s", method, route_template(scope), status["code"],
                                (time.perf_counter() - started) * 1000, request_id)  # fmt: skip


def route_template(scope: Scope) -> str:
    """The template of the route that served the request, or `(no route)` (never the path sent)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "(no route)"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
