"""The server's settings: `veil.toml` plus environment variables, validated once at start-up.

    [server]                          # VEIL_SERVER__PORT=9000 … (environment wins over the file)
    host = "127.0.0.1"
    port = 8000
    max_body_bytes = 4_194_304        # larger bodies: 413

    [[server.keys]]                   # static API keys (none: the server is open, for local trials)
    key_sha256 = "…"                  # hex SHA-256 of the key (or `key_env = "MY_KEY_VARIABLE"`)
    tenant = "default"
    scopes = ["chat", "embeddings", "anonymize", "scan"]

    [vault]
    url = ".veil"                     # a directory (SQLite + key file), "memory", postgresql://…, redis://…

    [policy]                          # the core's policy table (veil.Policy.from_mapping)
    mode = "strict"

    [providers.openai]
    base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"

    [models."gpt-4o-mini"]
    provider = "openai"
    context_length = 128000

With no `[models]`, the built-in `echo` provider serves the models `echo` and `echo-embedding`,
so that `veil serve` shows a full round trip on a fresh machine. `VEIL_API_KEY` is a shortcut
for one static key of the default tenant.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ECHO_PROVIDER = "echo"

SCOPES = frozenset({"chat", "embeddings", "anonymize", "scan", "models", "reverse", "mapping:read", "usage", "admin"})
DEFAULT_SCOPES = ("chat", "embeddings", "anonymize", "scan", "models")

SCOPE_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}"
"""A scope's name: also stated in the OpenAPI document (`schemas.SCOPE_PATTERN`)."""
_SCOPE_NAME = re.compile(SCOPE_NAME_PATTERN)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyPolicy(_Strict):
    """What a key's requests get when they do not say: anonymization on or off, and its mode."""

    anonymize: bool = True
    mode: Literal["strict", "permissive"] | None = None
    allow_opt_out: bool = True
    """May a request turn anonymization off (`X-Anonymize: false`)?"""
    entities: list[str] | None = None
    """The entity types this key's requests anonymize (None: the server policy's)."""
    flag_threshold: int | None = Field(default=None, ge=1)
    """Emit `anonymize.flagged` when a request of this key has this many values or more
    (None: the server's `server.webhooks.flag_threshold`)."""


class KeyLimits(_Strict):
    """A key's limits (None: unlimited). Requests over them get 429 with `Retry-After`."""

    requests_per_minute: int | None = Field(default=None, ge=1)
    requests_per_day: int | None = Field(default=None, ge=1)
    monthly_budget: float | None = Field(default=None, ge=0)
    """US dollars per calendar month (UTC), priced with each model's `price`."""


class ApiKeySettings(_Strict):
    """One static API key. Give its SHA-256 (`key_sha256`) or the name of a variable holding it (`key_env`)."""

    key_sha256: str | None = None
    key_env: str | None = None
    key: SecretStr | None = None
    name: str | None = None
    tenant: str = "default"
    scopes: list[str] = Field(default_factory=lambda: list(DEFAULT_SCOPES))
    policy: KeyPolicy = Field(default_factory=KeyPolicy)
    limits: KeyLimits = Field(default_factory=KeyLimits)

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - SCOPES)
        if unknown:
            raise ValueError(f"unknown scope(s) {unknown}; known: {sorted(SCOPES)}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ApiKeySettings:
        given = [self.key_sha256 is not None, self.key_env is not None, self.key is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of key_sha256, key_env or key")
        if self.key_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.key_sha256):
            raise ValueError("key_sha256 must be 64 lower-case hex digits (sha256sum of the key)")
        return self

    def digest(self) -> bytes:
        """The SHA-256 of the key (what the server keeps in memory and compares)."""
        if self.key_sha256 is not None:
            return bytes.fromhex(self.key_sha256)
        if self.key_env is not None:
            value = os.environ.get(self.key_env)
            if not value:
                raise ValueError(f"server.keys: the environment variable {self.key_env} is not set")
            return hashlib.sha256(value.encode()).digest()
        assert self.key is not None
        return hashlib.sha256(self.key.get_secret_value().encode()).digest()


class WebhookSettings(_Strict):
    """Signed webhook deliveries (see docs/webhooks.md)."""

    flag_threshold: int | None = Field(default=10, ge=1)
    """`anonymize.flagged` is emitted when one request has this many values or more (None: never)."""
    allow_private_addresses: bool = False
    """Deliver to loopback, private, link-local and other non-public addresses (SSRF: keep off in
    production unless receivers are on your own network)."""
    max_attempts: int = Field(default=8, ge=1, le=30)
    backoff_seconds: float = Field(default=2.0, gt=0)
    """The first retry's delay; each later one doubles it (with jitter), up to `backoff_max_seconds`."""
    backoff_max_seconds: float = Field(default=3600.0, gt=0)
    timeout: float = Field(default=10.0, gt=0)
    """Seconds a receiver has to answer one delivery."""
    queue_size: int = Field(default=10_000, ge=1)
    """Events waiting for the dispatcher; beyond it events are dropped (and counted), never blocking requests."""
    concurrency: int = Field(default=8, ge=1, le=256)
    poll_seconds: float = Field(default=5.0, gt=0)
    """How often the dispatcher looks for due retries (also those another replica left)."""
    max_subscriptions: int = Field(default=50, ge=1)
    """Per tenant."""
    log_retention_days: float = Field(default=30.0, gt=0)
    """Delivered and failed deliveries (and their attempts) are deleted after this many days."""


class ReversalSettings(_Strict):
    """Dual control of `POST /v1/anonymization/reverse` (see docs/webhooks.md#reversal)."""

    required_approvals: int = Field(default=2, ge=1, le=10)
    approvers: list[str] = Field(default_factory=list)
    """Key ids allowed to approve (empty: any key with scope `admin` of the tenant, never the requester)."""
    request_ttl: float = Field(default=24 * 3600, gt=0)
    approval_ttl: float = Field(default=3600, gt=0)

    @model_validator(mode="after")
    def _enough_approvers(self) -> ReversalSettings:
        if self.approvers and len(set(self.approvers)) < self.required_approvals:
            raise ValueError("server.reversal: fewer approvers listed than required_approvals")
        return self


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    keys: list[ApiKeySettings] = Field(default_factory=list)
    scope_ttl: float | None = Field(default=None, gt=0)
    """Seconds a named scope's mappings live in the vault (None: until erased)."""
    embeddings_scope: str = "embeddings"
    """The collection scope of embeddings requests that name none: same value, same token, so retrieval matches."""
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    state_url: str | None = None
    """Where API keys, usage, approvals, audit and webhooks live: a SQLite file (default
    $VEIL_HOME/server.db, else .veil/server.db) or postgresql://… shared by every replica."""
    state_connect_timeout: float = Field(default=10.0, gt=0, le=600)
    """Seconds a PostgreSQL state database may take to accept a first connection when the server
    starts (it retries meanwhile) before `veil serve` gives up with status 2."""
    redis_url: str | None = None
    """redis://… shared by every replica for rate limits and budgets (None: in-process limits, one replica)."""
    redis_prefix: str = Field(default="veil:limits", min_length=1, max_length=100)
    """The prefix of the limit counters' Redis keys (several gateways may share one Redis)."""
    jwt_secret_env: str | None = None
    """The environment variable holding the HS256 secret of the access tokens of `POST /v1/auth/token`
    (at least 32 bytes; set it for replicas). None: a random secret generated once and kept in the
    state database, so that replicas sharing it agree."""
    jwt_ttl: int = Field(default=900, ge=30, le=86400)
    """Seconds an access token lives at most (default 15 minutes)."""
    jwt_issuer: str = Field(default="veil-server", min_length=1, max_length=200)
    """The `iss` claim of the access tokens this server issues and accepts."""
    key_cache_seconds: float = Field(default=0.0, ge=0, le=300)
    """0 (default): every request with a stored key or a token reads the key's row, so a revocation
    holds from the next request on, on every replica. Above 0: each replica reuses a key it has read
    for up to this many seconds (saves a database round trip per request with PostgreSQL); a key
    revoked elsewhere is then refused by every replica within this many seconds (by the replica
    that revoked it, at once)."""
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    reversal: ReversalSettings = Field(default_factory=ReversalSettings)


class VaultSettings(_Strict):
    url: str | None = None
    """A directory (SQLite vault + key file), "memory", postgresql://… or redis://…
    (default: $VEIL_HOME, else .veil)."""
    keys: Literal["file", "env", "pkcs11"] = "file"
    """Where the key-encryption keys come from for PostgreSQL and Redis: a key file in `key_dir`, VEIL_KEK(S),
    or a hardware security module through PKCS#11 (`pkcs11_library`, the PIN in $VEIL_HSM_PIN; extra veil[hsm])."""
    key_dir: str | None = None
    pkcs11_library: str | None = None
    """The PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so or the HSM vendor's library."""
    pkcs11_token: str = "veil"  # noqa: S105 (the token's label, not a secret)
    pkcs11_key_label: str = "veil-kek"

    @model_validator(mode="after")
    def _pkcs11_needs_a_library(self) -> VaultSettings:
        if self.keys == "pkcs11" and not self.pkcs11_library:
            raise ValueError("vault.keys = 'pkcs11' needs vault.pkcs11_library (the path of the PKCS#11 module)")
        return self


class ProviderSettings(_Strict):
    """An OpenAI-compatible upstream (OpenAI, Mistral, vLLM, Ollama, llama.cpp server …)."""

    kind: Literal["openai", "echo"] = "openai"
    base_url: str = ""
    api_key_env: str | None = None
    timeout: float = Field(default=60.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    retries: int = Field(default=1, ge=0, le=10)
    """Retries of a failed connection (never of a request the upstream received)."""
    max_connections: int = Field(default=100, ge=1)
    location: str | None = None
    """Where the provider's servers are (shown in /v1/models): data residency matters for PII."""
    headers: dict[str, str] = Field(default_factory=dict)
    stream_usage: bool = True
    """Ask for usage in streams (`stream_options.include_usage`), so that budgets and usage count streamed
    tokens; turn off for an upstream that rejects `stream_options` (its streams are then estimated)."""

    @model_validator(mode="after")
    def _needs_url(self) -> ProviderSettings:
        if self.kind == "openai" and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http:// or https:// URL (e.g. https://api.openai.com/v1)")
        return self

    def api_key(self) -> str | None:
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise ValueError(f"the environment variable {self.api_key_env} (the provider's API key) is not set")
        return value


class ModelPrice(_Strict):
    """US dollars per million tokens: what budgets and `GET /v1/usage` cost figures count."""

    input: float = Field(default=0.0, ge=0)
    output: float = Field(default=0.0, ge=0)


class ModelSettings(_Strict):
    provider: str
    upstream: str | None = None
    """The model's name at the provider (default: the same name)."""
    category: Literal["chat", "completion", "embedding"] = "chat"
    context_length: int | None = Field(default=None, ge=1)
    owned_by: str | None = None
    price: ModelPrice = Field(default_factory=ModelPrice)


def default_models() -> dict[str, ModelSettings]:
    return {
        "echo": ModelSettings(provider=ECHO_PROVIDER, category="chat", context_length=32768, owned_by="veil"),
        "echo-embedding": ModelSettings(
            provider=ECHO_PROVIDER, category="embedding", context_length=8192, owned_by="veil"
        ),
    }


class Settings(BaseSettings):
    """Everything the server needs, from `veil.toml` and `VEIL_*` variables (environment wins)."""

    model_config = SettingsConfigDict(
        env_prefix="VEIL_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    vault: VaultSettings = Field(default_factory=VaultSettings)
    policy: dict[str, Any] = Field(default_factory=dict)
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    models: dict[str, ModelSettings] = Field(default_factory=dict)
    api_key: SecretStr | None = None
    """`VEIL_API_KEY`: one static key for the default tenant, with the default scopes."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = settings_cls.model_config.get("toml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if ECHO_PROVIDER not in self.providers:
            self.providers[ECHO_PROVIDER] = ProviderSettings(kind="echo", location="local (in process)")
        if not self.models:
            self.models = default_models()
        for name, model in self.models.items():
            if model.provider not in self.providers:
                raise ValueError(
                    f"models.{name}.provider: no provider named {model.provider!r}; "
                    f"configured: {sorted(self.providers)}"
                )
        if self.server.workers > 1 and (self.vault.url or "") == "memory":
            raise ValueError("vault.url = 'memory' cannot be shared by several workers: use a directory or a server")
        if self.server.workers > 1 and self.server.state_url == "memory":
            raise ValueError("server.state_url = 'memory' cannot be shared by several workers: use PostgreSQL")
        if not _SCOPE_NAME.fullmatch(self.server.embeddings_scope):
            raise ValueError("server.embeddings_scope: letters, digits and . _ : @ / - only")
        self._budgets_are_priced()
        self._limits_are_shared()
        return self

    def _limits_are_shared(self) -> None:
        """In-process limits are per process: with several workers, each would admit the whole limit."""
        limited = any(key.limits != KeyLimits() for key in self.server.keys)
        if limited and self.server.workers > 1 and not self.server.redis_url:
            raise ValueError(
                "server.workers > 1 with keys that have limits needs server.redis_url: in-process limits are "
                "counted by each worker on its own"
            )

    def _budgets_are_priced(self) -> None:
        """A budget counts the prices of models: a paid model with no `price` would be free for it."""
        if not any(key.limits.monthly_budget is not None for key in self.server.keys):
            return
        for name, model in self.models.items():
            if model.provider != ECHO_PROVIDER and "price" not in model.model_fields_set:
                raise ValueError(
                    f"models.{name}.price: a key has a monthly_budget, but this model has no price; give it one "
                    f"(US dollars per million tokens: price = {{input = 0.15, output = 0.6}}), or "
                    f"price = {{input = 0, output = 0}} if it is free"
                )

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> Settings:
        """Settings from a veil.toml (if given, else `$VEIL_CONFIG` if set), the environment and overrides."""
        if path is None:
            path = os.environ.get("VEIL_CONFIG") or None
        if path is None:
            return cls(**overrides)
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        from_file = type("Settings", (cls,), {"model_config": {**cls.model_config, "toml_file": path}})
        return from_file(**overrides)  # type: ignore[no-any-return]

    def state_location(self) -> str | None:
        """`server.state_url`; with none set, "memory" when the vault is in memory (nothing on disk),
        else None (the default SQLite file in $VEIL_HOME, else .veil)."""
        if self.server.state_url:
            return self.server.state_url
        return "memory" if self.vault.url == "memory" else None

    def key_entries(self) -> list[ApiKeySettings]:
        keys = list(self.server.keys)
        if self.api_key is not None:
            keys.append(ApiKeySettings(key=self.api_key, name="VEIL_API_KEY"))
        return keys


def valid_scope_name(name: str) -> bool:
    return bool(_SCOPE_NAME.fullmatch(name))
