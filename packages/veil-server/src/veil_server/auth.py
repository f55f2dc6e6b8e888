"""Who is calling: an Authenticator turns a request into a Principal (tenant, scopes, policy).

This module holds the seam and the simplest implementation: static API keys from the
configuration, kept as SHA-256 digests and compared in constant time against every configured
key (so the time taken says nothing about which key, or how much of it, matched). A server with
no key configured is open (local trials): every request is the anonymous principal of the
default tenant.

Issue 6 (keys created and revoked at run time, JWTs, rate limits) plugs in another
`Authenticator`; routes only ever see a `Principal` and call `principal.require(scope)`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from starlette.requests import Request

from veil_server.errors import ApiError
from veil_server.settings import DEFAULT_SCOPES, ApiKeySettings, KeyLimits, KeyPolicy


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request. `key_id` is a non-secret name for logs and metrics."""

    key_id: str
    tenant: str
    scopes: frozenset[str]
    policy: KeyPolicy = field(default_factory=KeyPolicy)
    limits: KeyLimits = field(default_factory=KeyLimits)
    credential: str = "key"
    """How the caller authenticated: "key" (an API key), "token" (an access token) or "open" (no keys exist)."""

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def require(self, scope: str) -> None:
        if not self.allows(scope):
            raise ApiError(
                403,
                f"this API key lacks the scope {scope!r} needed for this request",
                code="insufficient_scope",
                type="permission_error",
            )


class Authenticator(Protocol):
    """Turns a request into a Principal or raises ApiError(401)."""

    async def authenticate(self, request: Request) -> Principal: ...


def bearer_token(request: Request) -> str | None:
    """The API key of a request: `Authorization: Bearer …` (OpenAI SDKs) or `api-key: …` (Azure-style clients)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    other = request.headers.get("api-key")
    return other.strip() if other and other.strip() else None


MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using "
    "Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


class OpenAuthenticator:
    """No keys configured: every request is the anonymous principal (local trials only)."""

    def __init__(self, scopes: Iterable[str] = DEFAULT_SCOPES, tenant: str = "default") -> None:
        self.principal = Principal("anonymous", tenant, frozenset(scopes), credential="open")

    async def authenticate(self, request: Request) -> Principal:
        return self.principal


class StaticKeyAuthenticator:
    """API keys from the configuration, compared as SHA-256 digests in constant time."""

    def __init__(self, keys: Iterable[ApiKeySettings]) -> None:
        self._entries: list[tuple[bytes, Principal]] = []
        for entry in keys:
            digest = entry.digest()
            key_id = entry.name or f"key-{digest.hex()[:8]}"
            principal = Principal(key_id, entry.tenant, frozenset(entry.scopes), entry.policy, entry.limits)
            self._entries.append((digest, principal))
        if not self._entries:
            raise ValueError("StaticKeyAuthenticator needs at least one key")

    def by_id(self, key_id: str) -> Principal | None:
        """The configured key named `key_id` (what access tokens of config keys carry); None when
        there is none, or when two configured keys share that name."""
        found = [principal for _, principal in self._entries if principal.key_id == key_id]
        return found[0] if len(found) == 1 else None

    def lookup(self, presented: str) -> Principal | None:
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found: Principal | None = None
        for expected, principal in self._entries:  # every entry, always: no early exit
            if hmac.compare_digest(digest, expected) and found is None:
                found = principal
        return found

    async def authenticate(self, request: Request) -> Principal:
        presented = bearer_token(request)
        if presented is None:
            raise ApiError(401, MISSING_KEY, code="missing_api_key")
        principal = self.lookup(presented)
        if principal is None:
            # Like OpenAI, show only the key's last four characters.
            raise ApiError(401, f"Incorrect API key provided: ...{presented[-4:]}.", code="invalid_api_key")
        return principal
