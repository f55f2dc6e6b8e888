"""The gateway's run-time state, built once per app from the Settings: veil (engine per mode,
vault, keys), providers, the authenticator and the metrics. Routes reach it through
`request.app.state.gateway`; nothing lives at module level, so tests build as many apps as they like.

Scopes. A request that names a scope (`X-Veil-Scope` header or `veil_scope` in the body) is
anonymized in that scope of the caller's tenant, in the configured vault: the same value gets
the same token across the requests of that conversation or collection, and `PUT /v1/anonymize`
can restore its tokens later. A request that names none gets a fresh scope of its own, kept in
memory for the time of the request only: chat clients send the whole conversation in plain text
with every request, so tokens are consistent within it, and nothing outlives the answer.
Embeddings always use a collection scope (default `server.embeddings_scope`), so a query and the
documents it should find share their tokens.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import httpx

from veil.detect.engine import Engine
from veil.detect.policy import Policy
from veil.errors import VeilError
from veil.session import Session, Veil
from veil_server.access import AccessAuthenticator
from veil_server.access_tokens import TokenIssuer
from veil_server.approvals import Reversal
from veil_server.auth import Authenticator, StaticKeyAuthenticator
from veil_server.dispatcher import WebhookDispatcher
from veil_server.errors import ApiError, echo_name, from_veil_error
from veil_server.events import EventSink, NullEventSink
from veil_server.keys import KeyStore, KeyStoreError, check_key_policy
from veil_server.limits import Limiter, MemoryLimiter, RedisLimiter
from veil_server.meter import Meter
from veil_server.metrics import Metrics
from veil_server.sealing import FieldSealer
from veil_server.settings import ModelSettings, Settings, valid_scope_name
from veil_server.state import StateDB
from veil_server.upstream import Provider
from veil_server.usage import UsageStore
from veil_server.webhooks import WebhookStore

T = TypeVar("T")
log = logging.getLogger("veil_server")

# Below this many characters, anonymizing in memory is faster inline than through a worker thread.
_INLINE_CHARS = 16_384


def build_veil(settings: Settings, engine: Engine) -> Veil:
    """The Veil of the configured vault (named scopes)."""
    url = settings.vault.url or os.environ.get("VEIL_HOME") or ".veil"
    if url == "memory":
        return Veil(engine=engine)
    if url.startswith(("postgresql://", "postgres://", "redis://", "rediss://")):
        keys = _key_provider(settings)
        if url.startswith("redis"):
            from veil.vault.redis import RedisVault  # noqa: PLC0415

            return Veil(engine=engine, vault=RedisVault(url), keys=keys)
        from veil.vault.postgres import PostgresVault  # noqa: PLC0415

        return Veil(engine=engine, vault=PostgresVault(url), keys=keys)
    path = url.removeprefix("sqlite://")
    return Veil.open(Path(path), engine=engine)


def _key_provider(settings: Settings) -> Any:
    from veil.crypto.keys import EnvKeyProvider, LocalKeyFileProvider  # noqa: PLC0415

    if settings.vault.keys == "env":
        return EnvKeyProvider()
    if settings.vault.keys == "pkcs11":
        from veil.crypto.pkcs11 import Pkcs11KeyProvider  # noqa: PLC0415
        from veil.errors import ConfigError  # noqa: PLC0415

        pin = os.environ.get("VEIL_HSM_PIN")
        if not pin:
            raise ConfigError("vault.keys = 'pkcs11': set VEIL_HSM_PIN to the token's user PIN")
        assert settings.vault.pkcs11_library is not None
        return Pkcs11KeyProvider(settings.vault.pkcs11_library, settings.vault.pkcs11_token, pin,
                                 key_label=settings.vault.pkcs11_key_label)  # fmt: skip
    directory = Path(settings.vault.key_dir or os.environ.get("VEIL_HOME") or ".veil")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return LocalKeyFileProvider(directory / "keys.json")


def build_limiter(settings: Settings, usage: UsageStore) -> Limiter:
    """Redis when `server.redis_url` is set (every replica shares the counters), else in-process,
    with budgets picking up this month's spend from the usage table after a restart."""
    if settings.server.redis_url:
        return RedisLimiter(settings.server.redis_url, prefix=settings.server.redis_prefix)
    return MemoryLimiter(seed=usage.month_spend)


class Gateway:
    def __init__(
        self,
        settings: Settings,
        *,
        authenticator: Authenticator | None = None,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
        state: StateDB | None = None,
    ) -> None:
        self.settings = settings
        self.policy = Policy.from_mapping(settings.policy, where="policy")
        base = Engine(self.policy)
        self._engines: dict[tuple[str, frozenset[str] | None], Engine] = {(self.policy.mode, None): base}
        self._veils: dict[tuple[str, frozenset[str] | None], Veil] = {}
        self._lock = threading.Lock()
        self.veil = build_veil(settings, base)
        self._veils[(self.policy.mode, None)] = self.veil
        # API keys, usage, approvals, audit and webhooks: one state database per gateway.
        self._owns_state = state is None  # a StateDB given by the caller is the caller's to close
        self.state = (
            state
            if state is not None
            else StateDB.for_url(settings.state_location(), connect_timeout=settings.server.state_connect_timeout)
        )
        self.keys = KeyStore(self.state)
        self.tokens = TokenIssuer.for_settings(settings.server, self.keys.signing_secret)
        if authenticator is None:
            entries = settings.key_entries()
            for entry in entries:
                try:
                    check_key_policy(entry.policy, self.policy)
                except KeyStoreError as exc:
                    raise ValueError(f"server.keys ({entry.name or entry.tenant}): {exc}") from None
            static = StaticKeyAuthenticator(entries) if entries else None
            authenticator = AccessAuthenticator(static, self.keys, self.tokens,
                                                inline_reads=self.state.dialect == "sqlite",
                                                cache_seconds=settings.server.key_cache_seconds)  # fmt: skip
        self.authenticator = authenticator
        transports = transports or {}
        self.providers = {
            name: Provider(name, provider, transport=transports.get(name))
            for name, provider in settings.providers.items()
        }
        self.metrics = Metrics()
        self.events: EventSink = NullEventSink()
        self.instance = uuid.uuid4().hex[:8]
        self.usage = UsageStore(self.state)
        self.limiter = build_limiter(settings, self.usage)
        # The meter emits through whatever sink the gateway has when an event happens.
        self.meter = Meter(settings, self.limiter, self.usage, lambda: self.events, self.metrics)
        hooks = settings.server.webhooks
        store = WebhookStore(self.state, FieldSealer(self.veil.keyring), max_subscriptions=hooks.max_subscriptions)
        self.webhooks = WebhookDispatcher(store, hooks, instance=self.instance, metrics=self.metrics)
        self.events = self.webhooks
        self.reversal = Reversal(self.state, self.veil.keyring, self.veil.reveal_mapping, settings.server.reversal)

    async def aclose(self) -> None:
        await self.webhooks.stop()
        for provider in self.providers.values():
            await provider.aclose()
        await self.meter.aclose()
        await self.limiter.aclose()
        self.veil.close()
        if self._owns_state:
            self.state.close()

    def prepare_upstreams(self) -> None:
        """Load the upstreams' HTTP client and TLS contexts (from a background thread at start-up)."""
        for provider in self.providers.values():
            try:
                provider.prepare()
            except Exception as exc:  # the first request to that upstream will say what is wrong
                log.warning("upstream %s: cannot prepare its client (%s)", provider.name, type(exc).__name__)

    def warm(self) -> None:
        """Load every NER model now (each language), so that no request waits for one."""
        engine = self.engine(None)
        for detector in engine.ner_detectors:
            load = getattr(detector, "load", None)
            if callable(load):
                load()
        engine.detect("warm-up: jean@exemple.ca")

    # -- detection and scopes ---------------------------------------------------------------

    def _restricted(self, entities: list[str] | None) -> frozenset[str] | None:
        """A key's entity types, within what the server's policy reports (None: the policy's own)."""
        if entities is None:
            return None
        wanted = frozenset(name.upper() for name in entities)
        return wanted & self.policy.entities if self.policy.entities is not None else wanted

    def engine(self, mode: str | None, entities: list[str] | None = None) -> Engine:
        """The engine of the policy in `mode`, restricted to a key's `entities` when it has some."""
        key = (mode or self.policy.mode, self._restricted(entities))
        engine = self._engines.get(key)
        if engine is None:
            with self._lock:
                engine = self._engines.get(key)
                if engine is None:
                    changes: dict[str, Any] = {"mode": key[0]}
                    if key[1] is not None:
                        changes["entities"] = key[1]
                    try:
                        engine = Engine(self.policy.with_changes(**changes))
                    except VeilError as exc:  # a key's entities need a NER model this server lacks
                        raise from_veil_error(exc) from None
                    self._engines[key] = engine
        return engine

    def veil_for(self, mode: str | None, entities: list[str] | None = None) -> Veil:
        """The configured vault's Veil, detecting with the policy in `mode` (vault, keys and audit shared)."""
        key = (mode or self.policy.mode, self._restricted(entities))
        veil = self._veils.get(key)
        if veil is None:
            with self._lock:
                veil = self._veils.get(key)
                if veil is None:
                    veil = self.veil.with_engine(self.engine(mode, entities))
                    self._veils[key] = veil
        return veil

    def session(self, tenant: str, scope: str | None, mode: str | None, entities: list[str] | None = None) -> Session:
        """A session on a named scope of the vault, or on a fresh in-memory scope for this request only.
        `entities`: the caller's key restricts detection to these entity types."""
        if scope is None:
            ephemeral = Veil(engine=self.engine(mode, entities), audit_traffic=False, tenant=tenant)
            return ephemeral.session(f"request-{uuid.uuid4().hex}")
        if not valid_scope_name(scope):
            raise ApiError(400, "veil_scope: 1 to 200 letters, digits and . _ : @ / - only", param="veil_scope",
                           code="invalid_scope")  # fmt: skip
        return self.veil_for(mode, entities).session(scope, tenant=tenant, ttl=self.settings.server.scope_ttl)

    async def run(self, function: Callable[[], T], *, size: int = 0, named: bool = True) -> T:
        """Run veil work (detection, vault I/O): inline when it is small and in memory, else in a
        worker thread. Core errors become API errors (fail closed: the caller sends nothing on)."""
        try:
            if not named and size < _INLINE_CHARS:
                return function()
            return await anyio.to_thread.run_sync(function)
        except ApiError:
            raise
        except Exception as exc:
            raise from_veil_error(exc) from exc

    # -- models ----------------------------------------------------------------------------

    def model(self, name: str, category: str) -> tuple[ModelSettings, Provider]:
        model = self.settings.models.get(name)
        if model is None:
            shown = echo_name(name, "given")
            raise ApiError(
                400, f"The model {shown} does not exist or you do not have access to it.", param="model",
                code="invalid_model",
            )  # fmt: skip
        if category == "embedding" and model.category != "embedding":
            raise ApiError(400, f"The model `{name}` is not an embedding model.", param="model", code="invalid_model")
        if category != "embedding" and model.category == "embedding":
            raise ApiError(400, f"The model `{name}` is an embedding model.", param="model", code="invalid_model")
        return model, self.providers[model.provider]
