"""The gateway's authenticator: configured keys, stored keys and access tokens, in that order.

    Authorization: Bearer sk-veil-…         a key from veil.toml (compared against every digest), or
                                            a key from the key store (found by its id, digest compared)
    Authorization: Bearer eyJ…              an access token from POST /v1/auth/token

The server is open (every request is the anonymous principal of the default tenant, as before
keys existed) only while no key is configured and none was ever created in the store; the first
`veil keys create` closes it, and revoking every key does not reopen it.

Every request that presents a stored key or a token reads the key's row: revocation holds from
the next request on, on every replica. `server.key_cache_seconds` (0 by default) trades that for
one database read less per request: a replica then reuses a key it has read for that long, so a
key revoked on another replica is refused everywhere within that bound (at once on the replica
that revoked it). Only keys that verified are cached, under the digest of what was presented,
never the key itself. When the state database cannot be read the request is refused (503
`state_unavailable`), never let through.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from starlette.requests import Request

from veil_server.access_tokens import InvalidToken, TokenClaims, TokenIssuer, looks_like_token
from veil_server.auth import MISSING_KEY, OpenAuthenticator, Principal, StaticKeyAuthenticator, bearer_token
from veil_server.errors import ApiError
from veil_server.keys import ApiKeyRecord, KeyStore, key_id_of
from veil_server.state import StateUnavailable

T = TypeVar("T")

_CACHE_ENTRIES = 10_000


def invalid_key(message: str) -> ApiError:
    return ApiError(401, message, code="invalid_api_key")


class AccessAuthenticator:
    """Config keys, stored keys and access tokens (see the module docstring)."""

    def __init__(
        self,
        static: StaticKeyAuthenticator | None,
        store: KeyStore,
        tokens: TokenIssuer,
        *,
        inline_reads: bool = True,
        cache_seconds: float = 0.0,
    ) -> None:
        self.static = static
        self.store = store
        self.tokens = tokens
        self._open = OpenAuthenticator().principal
        # Once closed, closed for good: keys are never deleted, only revoked.
        self._closed = static is not None
        # SQLite reads take microseconds and run inline; PostgreSQL reads go to a worker thread.
        self._inline_reads = inline_reads
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ApiKeyRecord]] = {}
        # Keys revoked here: never cached again while an older read could still be in flight.
        self._forgotten: dict[str, float] = {}
        self._cache_lock = threading.Lock()

    # -- the optional cache of verified keys ------------------------------------------------------

    def _cached(self, name: str) -> ApiKeyRecord | None:
        if not self.cache_seconds:
            return None
        entry = self._cache.get(name)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def _remember(self, name: str, record: ApiKeyRecord) -> None:
        if not self.cache_seconds or record.revoked:
            return
        with self._cache_lock:
            if self._forgotten.get(record.id, 0.0) >= time.monotonic():
                return
            if len(self._cache) >= _CACHE_ENTRIES:
                self._cache.clear()
            self._cache[name] = (time.monotonic() + self.cache_seconds, record)

    def forget(self, key_id: str) -> None:
        """Drop a key from this replica's cache (it was revoked here)."""
        with self._cache_lock:
            now = time.monotonic()
            self._forgotten = {k: until for k, until in self._forgotten.items() if until >= now}
            self._forgotten[key_id] = now + self.cache_seconds
            for name in [name for name, (_, record) in self._cache.items() if record.id == key_id]:
                del self._cache[name]

    async def _verified(self, presented: str) -> ApiKeyRecord | None:
        name = "key:" + hashlib.sha256(presented.encode("utf-8", "surrogatepass")).hexdigest()
        record = self._cached(name)
        if record is None:
            record = await self._read(lambda: self.store.verify(presented))
            if record is not None:
                self._remember(name, record)
        return record

    async def _by_id(self, key_id: str) -> ApiKeyRecord | None:
        name = "id:" + key_id
        record = self._cached(name)
        if record is None:
            record = await self._read(lambda: self.store.get(key_id))
            if record is not None:
                self._remember(name, record)
        return record

    async def _read(self, function: Callable[[], T]) -> T:
        try:
            if self._inline_reads:
                return function()
            return await anyio.to_thread.run_sync(function)
        except StateUnavailable:
            raise ApiError(
                503, "The key store cannot be read; the request was refused. Retry later.",
                code="state_unavailable", headers={"Retry-After": "1"},
            ) from None  # fmt: skip

    async def is_open(self) -> bool:
        if not self._closed and await self._read(self.store.has_any):
            self._closed = True
        return not self._closed

    async def authenticate(self, request: Request) -> Principal:
        presented = bearer_token(request)
        if presented is None:
            if await self.is_open():
                return self._open
            raise ApiError(401, MISSING_KEY, code="missing_api_key")
        if self.static is not None and (found := self.static.lookup(presented)) is not None:
            return found
        if key_id_of(presented) is not None:
            record = await self._verified(presented)
            if record is not None:
                if record.revoked:
                    raise invalid_key(f"The API key {record.redacted} has been revoked.")
                return record.principal()
        elif looks_like_token(presented):
            if not self.tokens.secret_loaded:
                await self._read(self.tokens.secret)  # from the state database, once
            try:
                claims = self.tokens.verify(presented)
            except InvalidToken as exc:
                if await self.is_open():
                    return self._open
                raise invalid_key(str(exc)) from None
            return await self.token_principal(claims)
        if await self.is_open():
            return self._open  # no key exists: any key is accepted, as before keys existed
        # Like OpenAI, show only the key's last four characters.
        raise invalid_key(f"Incorrect API key provided: ...{presented[-4:]}.")

    async def token_principal(self, claims: TokenClaims) -> Principal:
        """The principal of a valid token: its key as it is now (revoked: refused), its scopes
        narrowed to what the key still has."""
        key: Principal | None = None
        if claims.source == "config":
            key = self.static.by_id(claims.key_id) if self.static is not None else None
        else:
            record = await self._by_id(claims.key_id)
            if record is not None and record.revoked:
                raise invalid_key(f"The API key {record.redacted} this access token was issued for has been revoked.")
            key = record.principal() if record is not None else None
        if key is None or key.tenant != claims.tenant:
            raise invalid_key("The API key this access token was issued for no longer exists.")
        scopes = frozenset(scope for scope in claims.scopes if key.allows(scope))
        return Principal(key.key_id, key.tenant, scopes, key.policy, key.limits, credential="token")

    def source_of(self, principal: Principal) -> str:
        """Where the key of an API-key principal lives: "config" or "store" (for the tokens' `src`)."""
        if self.static is not None and self.static.by_id(principal.key_id) is principal:
            return "config"
        return "store"
