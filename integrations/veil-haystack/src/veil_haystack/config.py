"""VeilConfig: the serializable settings every veil component is built from.

A Haystack component must survive `Pipeline.dumps()` / `Pipeline.loads()`, so it cannot hold a
`veil.Veil` (a live vault connection and unwrapped keys) as a constructor argument. It holds a
`VeilConfig` instead — plain settings, with keys and connection strings referenced through
Haystack `Secret`s (environment variables, never written to YAML) — and gets its Veil from it on
`warm_up()`.

Components built from equal configs share one Veil per process, as `InMemoryDocumentStore`s of
one index share their documents: the anonymizer of an indexing pipeline and the restorer of a
query pipeline, loaded separately from YAML, see the same scopes. Configs that differ only in
their policy (or tenant, style, ttl) share the vault, keys and audit log underneath, so a
restorer finds the tokens of an anonymizer whatever policy each was given.

Where mappings live:
- no `path`, no `vault_url`: in process memory under a random key (tests, trials; nothing survives);
- `path`: the embedded default of `veil.Veil.open(path)` — SQLite vault, key file (0600) and audit log;
- `vault_url` (a Secret holding `postgresql://…` or `redis://…`): a shared vault for several
  processes, with `kek` (a Secret holding a base64 key, or `1:<b64>,2:<b64>` versions) as the
  key-encryption key. `kek` also replaces the key file of `path`.
"""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path
from typing import Any

from haystack import default_from_dict, default_to_dict
from haystack.utils import Secret

from veil import ConfigError, Policy
from veil.audit import AuditStore, MemoryAuditStore, SQLiteAuditStore
from veil.crypto.keys import EnvKeyProvider, EphemeralKeyProvider, KeyProvider, LocalKeyFileProvider
from veil.session import Veil
from veil.vault.base import Vault
from veil.vault.memory import MemoryVault

STYLES = ("token", "surrogate")


class VeilConfig:
    """Settings of a veil component: where the vault and keys are, the tenant and the policy."""

    def __init__(
        self,
        *,
        path: str | None = None,
        vault_url: Secret | None = None,
        kek: Secret | None = None,
        tenant: str = "default",
        mode: str = "strict",
        policy: dict[str, Any] | None = None,
        policy_file: str | None = None,
        style: str = "token",
        ttl: float | None = None,
    ) -> None:
        """
        :param path: Directory of the embedded vault (`vault.db`), key file (`keys.json`) and audit log
            (`audit.db`), as `veil.Veil.open(path)`. None keeps mappings in process memory.
        :param vault_url: A `Secret` resolving to a `postgresql://` or `redis://` URL: a vault shared by
            several processes. Needs `kek`.
        :param kek: A `Secret` resolving to the key-encryption key (base64 of 32 bytes, or versioned
            `1:<base64>,2:<base64>`), e.g. `Secret.from_env_var("VEIL_KEK")`.
        :param tenant: The tenant of every scope of the components built from this config.
        :param mode: Policy mode, `"strict"` (recall) or `"permissive"` (precision).
        :param policy: The other policy options, as the `[policy]` table of `veil.toml`
            (`entities`, `exclude`, `thresholds`, `allow`, `deny`, `patterns`).
        :param policy_file: A `veil.toml` whose `[policy]` table is used instead of `mode` and `policy`.
        :param style: `"token"` (`{{EMAIL_1}}`) or `"surrogate"` (realistic fake values).
        :param ttl: Seconds after which new mappings expire (None: never).
        """
        if style not in STYLES:
            raise ConfigError(f"VeilConfig.style must be one of {', '.join(STYLES)}; got {style!r}")
        if policy is not None and "mode" in policy:
            raise ConfigError("VeilConfig.policy must not set 'mode': use VeilConfig(mode=...)")
        if policy_file is not None and (policy is not None or mode != "strict"):
            raise ConfigError("VeilConfig: give policy_file, or mode and policy, not both")
        if vault_url is not None and kek is None:
            raise ConfigError(
                "VeilConfig.vault_url needs a persistent key: kek=Secret.from_env_var('VEIL_KEK') "
                "(generate one with `veil keys generate`)"
            )
        if not tenant:
            raise ConfigError("VeilConfig.tenant must be a non-empty string")
        self.path = path
        self.vault_url = vault_url
        self.kek = kek
        self.tenant = tenant
        self.mode = mode
        self.policy = dict(policy) if policy is not None else None
        self.policy_file = policy_file
        self.style = style
        self.ttl = ttl
        self._policy = self._build_policy()  # validated now: a typo fails when the pipeline is built

    def _build_policy(self) -> Policy:
        if self.policy_file is not None:
            return Policy.from_toml(self.policy_file)
        return Policy.from_mapping({**(self.policy or {}), "mode": self.mode}, where="VeilConfig.policy")

    def to_dict(self) -> dict[str, Any]:
        """Serialize the settings; secrets are written as the names of their environment variables."""
        return default_to_dict(
            self,
            path=self.path,
            vault_url=self.vault_url,
            kek=self.kek,
            tenant=self.tenant,
            mode=self.mode,
            policy=copy.deepcopy(self.policy),  # a copy per component: no YAML anchors between them
            policy_file=self.policy_file,
            style=self.style,
            ttl=self.ttl,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VeilConfig:
        """Rebuild settings written by `to_dict()`."""
        return default_from_dict(cls, data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VeilConfig) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"VeilConfig(path={self.path!r}, tenant={self.tenant!r}, mode={self.mode!r}, style={self.style!r})"

    def _store_key(self) -> tuple[Any, ...]:
        # Secrets take part through their identity (env var names, or the token object), never a printed value.
        path = str(Path(self.path).resolve()) if self.path is not None else None
        return (path, self.vault_url, self.kek)

    def _key(self) -> tuple[Any, ...]:
        policy = json.dumps(self.policy, sort_keys=True, default=str) if self.policy is not None else None
        return (*self._store_key(), self.tenant, self.mode, policy, self.policy_file, self.style, self.ttl)

    def veil(self) -> Veil:
        """The process's Veil for these settings (built on first use, then shared)."""
        return _REGISTRY.veil(self)


class _Store:
    """Vault, key provider and audit store: what Veils of one storage setting share."""

    def __init__(self, config: VeilConfig) -> None:
        self.vault: Vault
        self.keys: KeyProvider
        self.audit: AuditStore
        root = Path(config.path) if config.path is not None else None
        if root is not None:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if config.kek is not None:
            self.keys = EnvKeyProvider(_kek_environ(config.kek))
        elif root is not None:
            self.keys = LocalKeyFileProvider(root / "keys.json")
        else:
            self.keys = EphemeralKeyProvider()
        self.audit = SQLiteAuditStore(root / "audit.db") if root is not None else MemoryAuditStore()
        if config.vault_url is not None:
            self.vault = _url_vault(config.vault_url)
        elif root is not None:
            from veil.vault.sqlite import SQLiteVault  # noqa: PLC0415

            self.vault = SQLiteVault(root / "vault.db")
        else:
            self.vault = MemoryVault()


def _kek_environ(kek: Secret) -> dict[str, str]:
    value = kek.resolve_value()
    if not isinstance(value, str) or not value:
        raise ConfigError("VeilConfig.kek resolved to nothing: set its environment variable (e.g. VEIL_KEK)")
    return {"VEIL_KEKS": value} if ":" in value else {"VEIL_KEK": value}


def _url_vault(url_secret: Secret) -> Vault:
    url = url_secret.resolve_value()
    if not isinstance(url, str) or not url:
        raise ConfigError("VeilConfig.vault_url resolved to nothing: set its environment variable")
    if url.startswith(("postgresql://", "postgres://")):
        from veil.vault.postgres import PostgresVault  # noqa: PLC0415

        return PostgresVault(url)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from veil.vault.redis import RedisVault  # noqa: PLC0415

        return RedisVault(url)
    # The URL may hold a password: name the expected schemes, never echo it.
    raise ConfigError("VeilConfig.vault_url must start with postgresql:// or redis://")


class _Registry:
    """One Veil per distinct config, one store per distinct storage setting, for the whole process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stores: dict[tuple[Any, ...], _Store] = {}
        self._veils: dict[tuple[Any, ...], Veil] = {}

    def veil(self, config: VeilConfig) -> Veil:
        key = config._key()
        found = self._veils.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._veils.get(key)
            if found is not None:
                return found
            store = self._stores.get(config._store_key())
            if store is None:
                store = self._stores[config._store_key()] = _Store(config)
            veil = Veil(
                policy=config._policy, vault=store.vault, keys=store.keys, audit=store.audit,
                tenant=config.tenant, ttl=config.ttl, style=config.style,
            )  # fmt: skip
            self._veils[key] = veil
            return veil


_REGISTRY = _Registry()
