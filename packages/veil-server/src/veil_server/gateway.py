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
from veil.session import Session, Veil
from veil_server.approvals import Reversal
from veil_server.auth import Authenticator, OpenAuthenticator, StaticKeyAuthenticator
from veil_server.dispatcher import WebhookDispatcher
from veil_server.errors import ApiError, from_veil_error
from veil_server.events import EventSink, NullEventSink
from veil_server.metrics import Metrics
from veil_server.sealing import FieldSealer
from veil_server.settings import ModelSettings, Settings, valid_scope_name
from veil_server.state import StateDB
from veil_server.upstream import Provider
from veil_server.webhooks import WebhookStore

T = TypeVar("T")

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
    directory = Path(settings.vault.key_dir or os.environ.get("VEIL_HOME") or ".veil")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return LocalKeyFileProvider(directory / "keys.json")


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
        self._engines: dict[str, Engine] = {self.policy.mode: base}
        self._veils: dict[str, Veil] = {}
        self._lock = threading.Lock()
        self.veil = build_veil(settings, base)
        self._veils[self.policy.mode] = self.veil
        if authenticator is None:
            keys = settings.key_entries()
            authenticator = StaticKeyAuthenticator(keys) if keys else OpenAuthenticator()
        self.authenticator = authenticator
        transports = transports or {}
        self.providers = {
            name: Provider(name, provider, transport=transports.get(name))
            for name, provider in settings.providers.items()
        }
        self.metrics = Metrics()
        self.events: EventSink = NullEventSink()
        self.instance = uuid.uuid4().hex[:8]
        self._owns_state = state is None  # a StateDB given by the caller is the caller's to close
        self.state = state if state is not None else StateDB.for_url(settings.server.state_url)
        hooks = settings.server.webhooks
        store = WebhookStore(self.state, FieldSealer(self.veil.keyring), max_subscriptions=hooks.max_subscriptions)
        self.webhooks = WebhookDispatcher(store, hooks, instance=self.instance, metrics=self.metrics)
        self.events = self.webhooks
        self.reversal = Reversal(self.state, self.veil.keyring, self.veil.reveal_mapping, settings.server.reversal)

    async def aclose(self) -> None:
        await self.webhooks.stop()
        for provider in self.providers.values():
            await provider.aclose()
        self.veil.close()
        if self._owns_state:
            self.state.close()

    def warm(self) -> None:
        """Load every NER model now (each language), so that no request waits for one."""
        engine = self.engine(None)
        for detector in engine.ner_detectors:
            load = getattr(detector, "load", None)
            if callable(load):
                load()
        engine.detect("warm-up: jean@exemple.ca")

    # -- detection and scopes ---------------------------------------------------------------

    def engine(self, mode: str | None) -> Engine:
        mode = mode or self.policy.mode
        engine = self._engines.get(mode)
        if engine is None:
            with self._lock:
                engine = self._engines.get(mode)
                if engine is None:
                    engine = Engine(self.policy.with_changes(mode=mode))
                    self._engines[mode] = engine
        return engine

    def veil_for(self, mode: str | None) -> Veil:
        """The configured vault's Veil, detecting with the policy in `mode` (vault, keys and audit shared)."""
        mode = mode or self.policy.mode
        veil = self._veils.get(mode)
        if veil is None:
            with self._lock:
                veil = self._veils.get(mode)
                if veil is None:
                    veil = self.veil.with_engine(self.engine(mode))
                    self._veils[mode] = veil
        return veil

    def session(self, tenant: str, scope: str | None, mode: str | None) -> Session:
        """A session on a named scope of the vault, or on a fresh in-memory scope for this request only."""
        if scope is None:
            ephemeral = Veil(engine=self.engine(mode), audit_traffic=False, tenant=tenant)
            return ephemeral.session(f"request-{uuid.uuid4().hex}")
        if not valid_scope_name(scope):
            raise ApiError(400, "veil_scope: 1 to 200 letters, digits and . _ : @ / - only", param="veil_scope",
                           code="invalid_scope")  # fmt: skip
        return self.veil_for(mode).session(scope, tenant=tenant, ttl=self.settings.server.scope_ttl)

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
            raise ApiError(
                400, f"The model `{name}` does not exist or you do not have access to it.", param="model",
                code="invalid_model",
            )  # fmt: skip
        if category == "embedding" and model.category != "embedding":
            raise ApiError(400, f"The model `{name}` is not an embedding model.", param="model", code="invalid_model")
        if category != "embedding" and model.category == "embedding":
            raise ApiError(400, f"The model `{name}` is an embedding model.", param="model", code="invalid_model")
        return model, self.providers[model.provider]
