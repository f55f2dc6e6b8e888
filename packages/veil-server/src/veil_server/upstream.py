"""Upstreams: one pooled `httpx.AsyncClient` per provider, speaking the OpenAI wire format.

A Provider sends an (already anonymized) JSON body to `<base_url><path>` and gives back the
parsed answer, or an open stream of Server-Sent Events. Failures become OpenAI error objects:

- the upstream's own error answer keeps its status (429 stays 429, with its Retry-After), except
  401/403 (the gateway's provider key was refused: 502, the client's key is not at fault);
- a timeout is 504, a connection that cannot be made (after `retries`) is 502;
- an answer that is not JSON is 502.

The built-in echo provider is the same client over httpx's ASGI transport (no socket).
"""

from __future__ import annotations

import http.cookiejar
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx

from veil_server.echo import create_echo_app
from veil_server.errors import ApiError, error_type_for
from veil_server.settings import ProviderSettings


class _NoCookies(http.cookiejar.CookieJar):
    """The upstream client keeps no cookies: a cookie set by a provider for one caller's request
    must not ride along with another caller's (and parsing them costs time on every answer)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def add_cookie_header(self, request: Any) -> None:
        return None


class Provider:
    def __init__(self, name: str, settings: ProviderSettings, *, transport: httpx.AsyncBaseTransport | None = None):
        self.name = name
        self.settings = settings
        headers = {"Accept": "application/json", **settings.headers}
        api_key = settings.api_key()
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if settings.kind == "echo":
            transport = transport or httpx.ASGITransport(app=create_echo_app())
            base_url = "http://echo.invalid/v1"
        else:
            transport = transport or httpx.AsyncHTTPTransport(
                retries=settings.retries,
                limits=httpx.Limits(max_connections=settings.max_connections, max_keepalive_connections=20),
                # Headers and body go out in separate writes: without TCP_NODELAY the body waits
                # for the peer's delayed ACK (milliseconds per request).
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            )
            base_url = settings.base_url.rstrip("/")
        self.base_url = base_url
        self.client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            cookies=_NoCookies(),
            transport=transport,
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def _transport_error(self, exc: httpx.HTTPError) -> ApiError:
        if isinstance(exc, httpx.TimeoutException):
            return ApiError(504, f"the upstream provider {self.name!r} timed out", code="upstream_timeout")
        return ApiError(
            502, f"the upstream provider {self.name!r} could not be reached ({type(exc).__name__})",
            code="upstream_unreachable",
        )  # fmt: skip

    def _error_from(self, response: httpx.Response, content: bytes) -> ApiError:
        status = response.status_code
        headers = {k: v for k, v in response.headers.items() if k.lower() in ("retry-after", "x-request-id")}
        try:
            payload = json.loads(content)
        except ValueError:
            payload = None
        error = payload.get("error") if isinstance(payload, dict) else None
        if status in (401, 403):
            return ApiError(
                502, f"the upstream provider {self.name!r} refused the gateway's credentials (status {status})",
                code="upstream_auth_failed",
            )  # fmt: skip
        if isinstance(error, dict):
            message = error["message"] if isinstance(error.get("message"), str) else f"upstream error {status}"
            return ApiError(
                status, message,
                type=error.get("type") if isinstance(error.get("type"), str) else error_type_for(status),
                code=error.get("code") if isinstance(error.get("code"), str) else None,
                param=error.get("param") if isinstance(error.get("param"), str) else None,
                headers=headers,
            )  # fmt: skip
        if isinstance(error, str):  # Ollama, llama.cpp: {"error": "..."}
            return ApiError(status, error, headers=headers, code="upstream_error")
        if isinstance(payload, dict) and isinstance(payload.get("message"), str):
            # Mistral, vLLM: {"object": "error", "message": ..., "type": ..., "code": ...} at the top level
            code = payload.get("code")
            return ApiError(
                status, payload["message"], headers=headers,
                type=payload["type"] if isinstance(payload.get("type"), str) else error_type_for(status),
                code=code if isinstance(code, str) else "upstream_error",
                param=payload.get("param") if isinstance(payload.get("param"), str) else None,
            )  # fmt: skip
        return ApiError(
            status, f"the upstream provider {self.name!r} answered status {status}", code="upstream_error",
            headers=headers,
        )  # fmt: skip

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON body; the upstream's JSON answer, or ApiError."""
        try:
            response = await self.client.post(path, json=body)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status_code >= 400:
            raise self._error_from(response, response.content)
        try:
            payload = response.json()
        except ValueError:
            raise ApiError(502, f"the upstream provider {self.name!r} answered with invalid JSON",
                           code="upstream_invalid_response") from None  # fmt: skip
        if not isinstance(payload, dict):
            raise ApiError(502, f"the upstream provider {self.name!r} answered with a non-object",
                           code="upstream_invalid_response")  # fmt: skip
        return payload

    async def get(self, path: str) -> httpx.Response:
        try:
            return await self.client.get(path)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None

    async def open_stream(self, path: str, body: dict[str, Any]) -> UpstreamStream:
        """POST a streaming request; return once the upstream's status is known (errors raise ApiError)."""
        request = self.client.build_request("POST", path, json=body, headers={"Accept": "text/event-stream"})
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status_code >= 400:
            try:
                content = await response.aread()
            except httpx.HTTPError:
                content = b""
            finally:
                await response.aclose()
            raise self._error_from(response, content)
        return UpstreamStream(self, response)


class UpstreamStream:
    """The events of an upstream SSE stream, parsed: JSON objects until `data: [DONE]`."""

    def __init__(self, provider: Provider, response: httpx.Response) -> None:
        self.provider = provider
        self.response = response
        self.done = False

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Each `data:` event as a dict; stops at `[DONE]` (then `self.done`) or at the end of the stream.
        Transport errors raise ApiError; a non-JSON event raises ApiError(502)."""
        data: list[str] = []
        try:
            async for line in self.response.aiter_lines():
                if line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                    continue
                if line or not data:
                    continue  # event:, id:, retry:, comments; or a blank line with nothing pending
                payload, data = "\n".join(data), []
                if payload.strip() == "[DONE]":
                    self.done = True
                    return
                yield self._parse(payload)
            if data:
                payload = "\n".join(data)
                if payload.strip() == "[DONE]":
                    self.done = True
                    return
                yield self._parse(payload)
        except httpx.HTTPError as exc:
            raise self.provider._transport_error(exc) from None

    def _parse(self, payload: str) -> dict[str, Any]:
        try:
            event = json.loads(payload)
        except ValueError:
            raise ApiError(502, f"the upstream provider {self.provider.name!r} sent an event that is not JSON",
                           code="upstream_invalid_response") from None  # fmt: skip
        if not isinstance(event, dict):
            raise ApiError(502, f"the upstream provider {self.provider.name!r} sent an event that is not an object",
                           code="upstream_invalid_response")  # fmt: skip
        return event

    async def aclose(self) -> None:
        await self.response.aclose()
