"""Access tokens: issued narrowed and short-lived; forged, expired, foreign or malformed ones refused
with a reason that never quotes the token."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
import pytest
from veil_server.access_tokens import (
    AUDIENCE,
    InvalidToken,
    TokenIssuer,
    looks_like_token,
    secret_from_environment,
)
from veil_server.auth import Principal

SECRET = b"s" * 32
KEY = Principal("0123456789abcdef", "acme", frozenset({"chat", "scan"}))


def issuer(**changes: object) -> TokenIssuer:
    options: dict[str, object] = {"issuer": "veil-server", "ttl": 900, **changes}
    return TokenIssuer(SECRET, **options)  # type: ignore[arg-type]


def claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "iss": "veil-server", "aud": AUDIENCE, "sub": KEY.key_id, "iat": now, "exp": now + 60, "jti": "j",
        "tenant": "acme", "scopes": ["chat"], "src": "store",
    }  # fmt: skip
    base.update(changes)
    return base


def test_a_token_carries_the_keys_scopes_or_fewer_and_expires_within_the_ttl() -> None:
    tokens = issuer()
    full = tokens.issue(KEY, "store")
    assert full.scopes == ("chat", "scan") and full.expires_in == 900
    verified = tokens.verify(full.access_token)
    assert verified.key_id == KEY.key_id and verified.tenant == "acme" and verified.scopes == {"chat", "scan"}
    narrowed = tokens.verify(tokens.issue(KEY, "store", scopes=["scan"], expires_in=60).access_token)
    assert narrowed.scopes == {"scan"} and narrowed.expires <= int(time.time()) + 60
    raw = jwt.decode(full.access_token, SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert raw["aud"] == "veil" and raw["iss"] == "veil-server" and raw["sub"] == KEY.key_id and raw["jti"]


def test_a_token_never_widens_the_keys_scopes_nor_outlives_the_ttl() -> None:
    tokens = issuer(ttl=300)
    with pytest.raises(PermissionError, match="lacks the scope"):
        tokens.issue(KEY, "store", scopes=["chat", "admin"])
    with pytest.raises(ValueError, match="unknown scope"):
        tokens.issue(KEY, "store", scopes=["everything"])
    with pytest.raises(ValueError, match="expires_in"):
        tokens.issue(KEY, "store", expires_in=301)
    with pytest.raises(ValueError, match="at least one scope"):
        tokens.issue(KEY, "store", scopes=[])
    admin = Principal("k", "acme", frozenset({"admin"}))
    assert tokens.issue(admin, "config", scopes=["usage"]).scopes == ("usage",)  # admin implies every scope


# Tokens are made when each test runs (not at collection: a whole-suite run outlasts their expiry).
BAD_TOKENS: dict[str, tuple[Callable[[], str], str]] = {
    "expired": (lambda: jwt.encode(claims(exp=int(time.time()) - 60), SECRET, algorithm="HS256"), "expired"),
    "forged": (lambda: jwt.encode(claims(), b"f" * 32, algorithm="HS256"), "signature"),
    "audience": (lambda: jwt.encode(claims(aud="someone-else"), SECRET, algorithm="HS256"), "audience"),
    "issuer": (lambda: jwt.encode(claims(iss="another-server"), SECRET, algorithm="HS256"), "issuer"),
    "no-jti": (lambda: jwt.encode({k: v for k, v in claims().items() if k != "jti"}, SECRET), "'jti'"),
    "scopes": (lambda: jwt.encode(claims(scopes=["everything"]), SECRET, algorithm="HS256"), "scopes"),
    "source": (lambda: jwt.encode(claims(src="elsewhere"), SECRET, algorithm="HS256"), "malformed"),
    "alg-none": (lambda: jwt.encode(claims(), None, algorithm="none"), "HS256"),
    "hs512": (lambda: jwt.encode(claims(), SECRET * 2, algorithm="HS512"), "HS256"),
    "garbage": (lambda: "abc.def.ghi", "malformed"),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_a_bad_token_is_refused_with_its_reason_and_never_quoted(case: str) -> None:
    make, reason = BAD_TOKENS[case]
    token = make()
    with pytest.raises(InvalidToken) as caught:
        issuer().verify(token)
    assert reason in str(caught.value)
    assert token not in str(caught.value) and token.split(".")[1] not in str(caught.value)


def test_a_token_just_past_its_expiry_is_accepted_within_the_leeway_only() -> None:
    tokens = issuer()
    assert tokens.verify(jwt.encode(claims(exp=int(time.time()) - 3), SECRET, algorithm="HS256"))
    with pytest.raises(InvalidToken, match="expired"):
        tokens.verify(jwt.encode(claims(exp=int(time.time()) - 30), SECRET, algorithm="HS256"))


def test_the_secret_comes_from_the_environment_or_lazily_from_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEIL_TEST_JWT", "x" * 40)
    assert secret_from_environment("VEIL_TEST_JWT") == b"x" * 40
    monkeypatch.setenv("VEIL_TEST_JWT", "short")
    with pytest.raises(ValueError, match="at least 32"):
        secret_from_environment("VEIL_TEST_JWT")
    monkeypatch.delenv("VEIL_TEST_JWT")
    with pytest.raises(ValueError, match="VEIL_TEST_JWT is not set"):
        secret_from_environment("VEIL_TEST_JWT")
    calls: list[int] = []

    def stored() -> bytes:
        calls.append(1)
        return SECRET

    lazy = TokenIssuer(stored, issuer="veil-server", ttl=60)
    assert calls == []
    lazy.verify(lazy.issue(KEY, "store").access_token)
    assert calls == [1]


def test_only_three_segment_strings_look_like_tokens() -> None:
    assert looks_like_token(issuer().issue(KEY, "store").access_token)
    assert not looks_like_token("sk-veil-0123456789abcdef_" + "a" * 43)
    assert not looks_like_token("a.b") and not looks_like_token("a..c")
