"""Upstreams: one pooled HTTP client per provider, speaking the OpenAI wire format.

A Provider sends an (already anonymized) JSON body to `<base_url><path>` and gives back the
parsed answer, or an open stream of Server-Sent Events. Failures become OpenAI error objects:

- the upstream's own error answer keeps its status (429 stays 429, with its Retry-After; the
  upstream's x-request-id comes as X-Upstream-Request-Id) and its message, whichever of the
  dialects it is in (OpenAI's error object, Mistral's and vLLM's top-level one, Ollama's bare
  string, FastAPI's `detail`), except 401/403 (the gateway's provider key was refused: 502, the
  client's key is not at fault);
- a timeout is 504, a connection that cannot be made (after `retries`) is 502;
- an answer that is not JSON is 502.

Two wires carry the requests. A remote upstream (http:// or https://) goes through aiohttp: its
client costs about a quarter of httpx's CPU per request (C parser, headers and body in one write),
which is most of what the gateway spends on a request besides anonymizing. The built-in echo
provider, and a provider whose transport a caller replaces (tests), go through
`httpx.AsyncClient` (for echo over httpx's ASGI transport: the same code path, no socket).
Both keep no cookies, follow no redirects, honour HTTP(S)_PROXY / NO_PROXY and SSL_CERT_FILE /
SSL_CERT_DIR (certifi's roots otherwise), and retry only a connection that could not be made.
"""

from __future__ import annotations

import asyncio
import codecs
import http.cookiejar
import json
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from veil_server.echo import create_echo_app
from veil_server.errors import ApiError, error_type_for
from veil_server.jsonio import loads
from veil_server.settings import ProviderSettings

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class _NoCookies(http.cookiejar.CookieJar):
    """The upstream client keeps no cookies: a cookie set by a provider for one caller's request
    must not ride along with another caller's (and parsing them costs time on every answer)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def add_cookie_header(self, request: Any) -> None:
        return None


class _Unreachable(Exception):
    """No HTTP answer: the connection failed, broke, or timed out (`timeout`). `cause` names the
    underlying error type (for the error message; never the request's text)."""

    def __init__(self, cause: str, *, timeout: bool) -> None:
        super().__init__(cause)
        self.cause = cause
        self.timeout = timeout


def encode_json(body: dict[str, Any]) -> bytes:
    """The body as httpx's `json=` writes it (UTF-8, compact, no NaN)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class SseLines:
    """Lines of an event stream, split on CRLF, LF or CR only (SSE's line ends): a U+2028 inside
    a JSON string is not a line end. A CR at the end of a chunk waits for the next one (CRLF)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, data: bytes) -> list[str]:
        text = self._pending + self._decoder.decode(data)
        held = text.endswith("\r")
        lines = _LINE_BREAK.split(text[:-1] if held else text)
        self._pending = lines.pop() + ("\r" if held else "")
        return lines

    def close(self) -> list[str]:
        rest, self._pending = self._pending + self._decoder.decode(b"", final=True), ""
        if rest.endswith("\r"):  # a line ended by the stream's last CR
            return [rest[:-1]]
        return [rest] if rest else []


class _Answer:
    """An upstream answer whose body is still to be read: status, headers, then body or lines."""

    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes:
        raise NotImplementedError

    def blocks(self) -> AsyncIterator[list[str]]:
        """The body's lines, a list per read: the lines that arrived together stay together."""
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


class _HttpxAnswer(_Answer):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status = response.status_code
        self.headers = response.headers

    async def read(self) -> bytes:
        try:
            return await self.response.aread()
        except httpx.HTTPError as exc:
            raise _unreachable_httpx(exc) from None

    async def blocks(self) -> AsyncIterator[list[str]]:
        splitter = SseLines()
        try:
            async for data in self.response.aiter_bytes():
                yield splitter.feed(data)
        except httpx.HTTPError as exc:
            raise _unreachable_httpx(exc) from None
        yield splitter.close()

    async def aclose(self) -> None:
        await self.response.aclose()


def _unreachable_httpx(exc: httpx.HTTPError) -> _Unreachable:
    return _Unreachable(type(exc).__name__, timeout=isinstance(exc, httpx.TimeoutException))


class _HttpxWire:
    """httpx.AsyncClient: for the echo provider (ASGI, in process) and transports given by callers."""

    def __init__(self, base_url: str, headers: dict[str, str], settings: ProviderSettings,
                 transport: httpx.AsyncBaseTransport) -> None:  # fmt: skip
        self.client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            cookies=_NoCookies(),
            transport=transport,
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
        )

    async def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> _Answer:
        request = self.client.build_request(method, path, content=body, headers=headers)
        try:
            return _HttpxAnswer(await self.client.send(request, stream=True))
        except httpx.HTTPError as exc:
            raise _unreachable_httpx(exc) from None

    async def aclose(self) -> None:
        await self.client.aclose()


class _AiohttpAnswer(_Answer):
    def __init__(self, response: Any) -> None:
        self.response = response
        self.status = response.status
        self.headers = response.headers

    async def read(self) -> bytes:
        try:
            data: bytes = await self.response.read()
        except (TimeoutError, _aiohttp().ClientError) as exc:
            raise _unreachable_aiohttp(exc) from None
        return data

    async def blocks(self) -> AsyncIterator[list[str]]:
        splitter = SseLines()
        try:
            async for data in self.response.content.iter_any():
                yield splitter.feed(data)
        except (TimeoutError, _aiohttp().ClientError) as exc:
            raise _unreachable_aiohttp(exc) from None
        yield splitter.close()

    async def aclose(self) -> None:
        # Read to the end: the connection goes back to the pool; else it is closed (the upstream
        # sees the client leave and stops generating).
        if self.response.content.at_eof():
            self.response.release()
        else:
            self.response.close()


_PASSED_HEADERS = {"retry-after": "Retry-After", "x-request-id": "X-Upstream-Request-Id"}


def _fastapi_detail(detail: object) -> str | None:
    """The message of a FastAPI error body: a string, or validation errors (`loc` and `msg` of the
    first three; never their `input`, which echoes the request)."""
    if isinstance(detail, str) and detail:
        return detail[:500]
    if not isinstance(detail, list):
        return None
    parts = []
    for item in detail[:3]:
        if isinstance(item, dict) and isinstance(item.get("msg"), str):
            location = ".".join(str(part) for part in item.get("loc") or () if isinstance(part, str | int))
            parts.append(f"{location}: {item['msg']}" if location else item["msg"])
    return "; ".join(parts)[:500] or None


def _aiohttp() -> Any:
    import aiohttp  # noqa: PLC0415 - imported by the first remote provider, not by every import of this module

    return aiohttp


def _proxy_for(base_url: str) -> str | None:
    """The proxy of HTTP_PROXY / HTTPS_PROXY for this upstream, unless NO_PROXY exempts it: read
    once, as httpx does (aiohttp's `trust_env` reads the environment and ~/.netrc on every
    request, which cost more CPU than the rest of the request)."""
    parts = urllib.parse.urlsplit(base_url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy is None or urllib.request.proxy_bypass(parts.netloc):
        return None
    return proxy


def _unreachable_aiohttp(exc: BaseException) -> _Unreachable:
    return _Unreachable(type(exc).__name__, timeout=isinstance(exc, TimeoutError))


class _AiohttpWire:
    """aiohttp.ClientSession for a remote upstream; the session is made in the running event loop.

    aiohttp itself (a tenth of a second to import: it builds TLS contexts at import) and this
    upstream's TLS context are loaded by `prepare`, which the app runs in a background thread
    once it serves (`Gateway.prepare_upstreams`), so that start-up does not wait for them; a
    request that comes first waits for them instead."""

    def __init__(self, base_url: str, headers: dict[str, str], settings: ProviderSettings) -> None:
        self.base_url = base_url
        self.headers = headers
        self.settings = settings
        self.ssl: Any = None
        self.proxy: str | None = None
        self._prepared = False
        self._preparing = threading.Lock()
        self._session: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def prepare(self) -> None:
        with self._preparing:
            if self._prepared:
                return
            _aiohttp()
            if self.base_url.startswith("https://"):
                # The trust store httpx would use (SSL_CERT_FILE / SSL_CERT_DIR, else certifi's roots).
                self.ssl = httpx.create_ssl_context()
            self.proxy = _proxy_for(self.base_url)
            self._prepared = True

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            self.prepare()
            aiohttp = _aiohttp()
            timeout = aiohttp.ClientTimeout(
                total=None, connect=self.settings.connect_timeout, sock_connect=self.settings.connect_timeout,
                sock_read=self.settings.timeout,
            )  # fmt: skip
            # Idle connections are dropped after 4 s: before the upstream drops them (uvicorn, under
            # vLLM and others, after 5 s), so that a request never goes out on one being closed.
            connector = aiohttp.TCPConnector(limit=self.settings.max_connections, limit_per_host=0,
                                             keepalive_timeout=4.0,
                                             ssl=self.ssl if self.ssl is not None else True)  # fmt: skip
            self._session = aiohttp.ClientSession(
                headers=self.headers, timeout=timeout, connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=True,
            )  # fmt: skip
            self._loop = loop
        return self._session

    async def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> _Answer:
        session = self._client()
        aiohttp = _aiohttp()
        url = self.base_url + path
        attempts = self.settings.retries + 1
        for attempt in range(attempts):
            try:
                response = await session.request(method, url, data=body, headers=headers, proxy=self.proxy,
                                                 allow_redirects=False)  # fmt: skip
                return _AiohttpAnswer(response)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                # Nothing reached the upstream: try again (not after a certificate error).
                if attempt + 1 == attempts or isinstance(exc, aiohttp.ClientSSLError):
                    raise _unreachable_aiohttp(exc) from None
                await asyncio.sleep(0.5 * (2**attempt - 1))
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise _unreachable_aiohttp(exc) from None
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None


class Provider:
    def __init__(self, name: str, settings: ProviderSettings, *, transport: httpx.AsyncBaseTransport | None = None):
        self.name = name
        self.settings = settings
        headers = {"Accept": "application/json", **settings.headers}
        api_key = settings.api_key()
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.wire: _HttpxWire | _AiohttpWire
        if settings.kind == "echo":
            base_url = "http://echo.invalid/v1"
            self.wire = _HttpxWire(base_url, headers, settings, transport or httpx.ASGITransport(app=create_echo_app()))
        elif transport is not None:
            base_url = settings.base_url.rstrip("/")
            self.wire = _HttpxWire(base_url, headers, settings, transport)
        else:
            base_url = settings.base_url.rstrip("/")
            self.wire = _AiohttpWire(base_url, headers, settings)
        self.base_url = base_url

    async def aclose(self) -> None:
        await self.wire.aclose()

    def prepare(self) -> None:
        """Load what the first request would otherwise load (see `_AiohttpWire`); any thread."""
        if isinstance(self.wire, _AiohttpWire):
            self.wire.prepare()

    def _transport_error(self, exc: _Unreachable) -> ApiError:
        if exc.timeout:
            return ApiError(504, f"the upstream provider {self.name!r} timed out", code="upstream_timeout")
        return ApiError(
            502, f"the upstream provider {self.name!r} could not be reached ({exc.cause})",
            code="upstream_unreachable",
        )  # fmt: skip

    def _error_from(self, status: int, response_headers: Mapping[str, str], content: bytes) -> ApiError:
        # Retry-After as sent; the upstream's request id under a name of its own (the gateway's
        # answer carries its own x-request-id: two would reach the client as one joined value).
        headers = {_PASSED_HEADERS[k.lower()]: v for k, v in response_headers.items() if k.lower() in _PASSED_HEADERS}
        try:
            payload = loads(content)
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
        detail = _fastapi_detail(payload.get("detail")) if isinstance(payload, dict) else None
        if detail is not None:  # FastAPI-based servers (Mistral's 422, Open WebUI): {"detail": ...}
            return ApiError(status, detail, headers=headers, code="upstream_error")
        return ApiError(
            status, f"the upstream provider {self.name!r} answered status {status}", code="upstream_error",
            headers=headers,
        )  # fmt: skip

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON body; the upstream's JSON answer, or ApiError."""
        try:
            answer = await self.wire.send("POST", path, encode_json(body), {"Content-Type": "application/json"})
            try:
                content = await answer.read()
            finally:
                await answer.aclose()
        except _Unreachable as exc:
            raise self._transport_error(exc) from None
        if answer.status >= 400:
            raise self._error_from(answer.status, answer.headers, content)
        try:
            payload = loads(content)
        except ValueError:
            raise ApiError(502, f"the upstream provider {self.name!r} answered with invalid JSON",
                           code="upstream_invalid_response") from None  # fmt: skip
        if not isinstance(payload, dict):
            raise ApiError(502, f"the upstream provider {self.name!r} answered with a non-object",
                           code="upstream_invalid_response")  # fmt: skip
        return payload

    async def status_of(self, path: str) -> int:
        """GET `path` (a health check): the upstream's status code, or ApiError."""
        try:
            answer = await self.wire.send("GET", path, None, {})
            await answer.aclose()
        except _Unreachable as exc:
            raise self._transport_error(exc) from None
        return answer.status

    async def open_stream(self, path: str, body: dict[str, Any]) -> UpstreamStream:
        """POST a streaming request; return once the upstream's status is known (errors raise ApiError)."""
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        try:
            answer = await self.wire.send("POST", path, encode_json(body), headers)
        except _Unreachable as exc:
            raise self._transport_error(exc) from None
        if answer.status >= 400:
            try:
                content = await answer.read()
            except _Unreachable:
                content = b""
            finally:
                await answer.aclose()
            raise self._error_from(answer.status, answer.headers, content)
        return UpstreamStream(self, answer)


class UpstreamStream:
    """The events of an upstream SSE stream, parsed: JSON objects until `data: [DONE]`."""

    def __init__(self, provider: Provider, answer: _Answer) -> None:
        self.provider = provider
        self.answer = answer
        self.done = False
        self.more = False
        """While an event is being handled: whether the next one has already arrived with it (the
        relay sends the chunks of one upstream read together, and waits for no more than that)."""

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Each `data:` event as a dict; stops at `[DONE]` (then `self.done`) or at the end of the stream.
        Transport errors raise ApiError; a non-JSON event raises ApiError(502)."""
        data: list[str] = []
        try:
            async for lines in self.answer.blocks():
                payloads = []
                for line in lines:
                    if line.startswith("data:"):
                        data.append(line[5:].removeprefix(" "))
                        continue
                    if line or not data:
                        continue  # event:, id:, retry:, comments; or a blank line with nothing pending
                    payloads.append("\n".join(data))
                    data = []
                for index, payload in enumerate(payloads):
                    if payload.strip() == "[DONE]":
                        self.done, self.more = True, False
                        return
                    self.more = index + 1 < len(payloads)
                    yield self._parse(payload)
            self.more = False
            if data:
                payload = "\n".join(data)
                if payload.strip() == "[DONE]":
                    self.done = True
                    return
                yield self._parse(payload)
        except _Unreachable as exc:
            raise self.provider._transport_error(exc) from None

    def _parse(self, payload: str) -> dict[str, Any]:
        try:
            event = loads(payload)
        except ValueError:
            raise ApiError(502, f"the upstream provider {self.provider.name!r} sent an event that is not JSON",
                           code="upstream_invalid_response") from None  # fmt: skip
        if not isinstance(event, dict):
            raise ApiError(502, f"the upstream provider {self.provider.name!r} sent an event that is not an object",
                           code="upstream_invalid_response")  # fmt: skip
        return event

    async def aclose(self) -> None:
        await self.answer.aclose()
