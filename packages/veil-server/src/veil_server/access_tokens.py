"""Short-lived access tokens (JWT, HS256) issued by `POST /v1/auth/token` for an API key.

A client that should not hold a long-lived key (a browser, a batch job on a shared machine)
gets a token that expires within `server.jwt_ttl` seconds (15 minutes by default). The claims:

    iss  server.jwt_issuer          aud  "veil"             sub  the key's id
    iat, exp                        jti  a random id        tenant, scopes (a subset of the key's)
    src  "store" | "config"         where the key lives (run-time key or configuration)

Every request that presents a token is checked for signature, expiry (with `LEEWAY_SECONDS` for
clock skew between replicas), audience and issuer, and its key is looked up again: a revoked
key's tokens stop working at once, and a token never carries more scopes than its key has now.
Errors say what is wrong with the token; no message quotes it.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import jwt

from veil_server.auth import Principal
from veil_server.errors import listed_names
from veil_server.settings import SCOPES, ServerSettings

AUDIENCE = "veil"
ALGORITHM = "HS256"
LEEWAY_SECONDS = 10
MIN_SECRET_BYTES = 32
SOURCES = ("store", "config")
_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_REQUIRED = ["iss", "aud", "sub", "iat", "exp", "jti", "tenant", "scopes", "src"]


class InvalidToken(Exception):
    """A token that must be refused; the message says why and is safe to show the caller."""


def looks_like_token(presented: str) -> bool:
    """Three base64url segments: a JWT (API keys never contain a dot)."""
    return bool(_SHAPE.fullmatch(presented))


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TokenClaims:
    key_id: str
    source: str
    tenant: str
    scopes: frozenset[str]
    jti: str
    expires: int


def secret_from_environment(variable: str) -> bytes:
    """The signing secret named by `server.jwt_secret_env` (checked at start-up)."""
    value = os.environ.get(variable)
    if not value:
        raise ValueError(f"server.jwt_secret_env: the environment variable {variable} is not set")
    secret = value.encode()
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"server.jwt_secret_env: {variable} holds {len(secret)} bytes; an HS256 secret needs at least "
            f"{MIN_SECRET_BYTES} (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
        )
    return secret


class TokenIssuer:
    """Signs and verifies access tokens. The secret is fetched once, on first use (from the
    environment, or from the state database through `secret`)."""

    def __init__(self, secret: bytes | Callable[[], bytes], *, issuer: str, ttl: int) -> None:
        self._secret: bytes | None = secret if isinstance(secret, bytes) else None
        self._load = secret if callable(secret) else None
        self._lock = threading.Lock()
        self.issuer = issuer
        self.ttl = ttl

    @classmethod
    def for_settings(cls, server: ServerSettings, stored: Callable[[], bytes]) -> TokenIssuer:
        secret = secret_from_environment(server.jwt_secret_env) if server.jwt_secret_env else stored
        return cls(secret, issuer=server.jwt_issuer, ttl=server.jwt_ttl)

    @property
    def secret_loaded(self) -> bool:
        return self._secret is not None

    def secret(self) -> bytes:
        if self._secret is None:
            with self._lock:
                if self._secret is None:
                    assert self._load is not None
                    self._secret = self._load()
        return self._secret

    def issue(
        self,
        principal: Principal,
        source: str,
        *,
        scopes: Iterable[str] | None = None,
        expires_in: int | None = None,
        now: float | None = None,
    ) -> IssuedToken:
        """A token for `principal`'s key, with `scopes` (default: all of the key's; never more)
        and a lifetime of `expires_in` seconds (default and maximum: the configured TTL)."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}")
        if scopes is None:
            granted = tuple(sorted(principal.scopes))
        else:
            granted = tuple(sorted(set(scopes)))
            unknown = [scope for scope in granted if scope not in SCOPES]
            if unknown:
                raise ValueError(f"unknown scope(s) {listed_names(unknown)}")
            beyond = [scope for scope in granted if not principal.allows(scope)]
            if beyond:
                missing = ", ".join(beyond)
                raise PermissionError(f"the API key lacks the scope(s) {missing}: a token can only narrow them")
        if not granted:
            raise ValueError("a token needs at least one scope")
        lifetime = self.ttl if expires_in is None else expires_in
        if not 1 <= lifetime <= self.ttl:
            raise ValueError(f"expires_in must be between 1 and {self.ttl} seconds")
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self.issuer, "aud": AUDIENCE, "sub": principal.key_id, "iat": issued, "exp": issued + lifetime,
            "jti": secrets.token_hex(16), "tenant": principal.tenant, "scopes": list(granted), "src": source,
        }  # fmt: skip
        return IssuedToken(jwt.encode(claims, self.secret(), algorithm=ALGORITHM), lifetime, granted)

    def verify(self, token: str) -> TokenClaims:
        """The claims of a valid token, else InvalidToken with the reason."""
        try:
            claims = jwt.decode(
                token, self.secret(), algorithms=[ALGORITHM], audience=AUDIENCE, issuer=self.issuer,
                leeway=LEEWAY_SECONDS, options={"require": _REQUIRED},
            )  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise InvalidToken("The access token has expired: request a new one from POST /v1/auth/token.") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(f"The access token is not meant for this server (audience {AUDIENCE!r}).") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("The access token was not issued by this server (issuer).") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("The access token's signature is invalid.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"The access token lacks the claim {exc.claim!r}.") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("The access token is not valid yet (issued in the future).") from None
        except jwt.InvalidAlgorithmError:
            raise InvalidToken(f"The access token must be signed with {ALGORITHM}.") from None
        except jwt.InvalidTokenError:
            raise InvalidToken("The access token is malformed.") from None
        return _claims(claims)


def _claims(claims: dict[str, object]) -> TokenClaims:
    scopes = claims["scopes"]
    tenant, subject, source, jti = claims["tenant"], claims["sub"], claims["src"], claims["jti"]
    if not isinstance(scopes, list) or not all(isinstance(s, str) and s in SCOPES for s in scopes):
        raise InvalidToken("The access token's scopes are malformed.")
    if not all(isinstance(value, str) and value for value in (tenant, subject, source, jti)) or source not in SOURCES:
        raise InvalidToken("The access token's claims are malformed.")
    expires = claims["exp"]
    return TokenClaims(str(subject), str(source), str(tenant), frozenset(scopes), str(jti),
                       int(expires) if isinstance(expires, int | float) else 0)  # fmt: skip
