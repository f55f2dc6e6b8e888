"""What every veil component shares: a VeilConfig, the Veil built from it on warm-up, scopes."""

from __future__ import annotations

import uuid
from typing import Any

from haystack.core.errors import DeserializationError
from haystack.core.serialization import generate_qualified_class_name

from veil import ConfigError
from veil.session import Session, Veil
from veil_haystack.config import VeilConfig


class VeilComponent:
    """Mixin: `config` (serializable settings), the shared Veil (on `warm_up()` or first use), scopes."""

    config: VeilConfig
    scope: str | None

    def _init_veil(self, config: VeilConfig | None, scope: str | None) -> None:
        if scope is not None and not scope:
            raise ConfigError(f"{type(self).__name__}: scope must be a non-empty string or None")
        self.config = config if config is not None else VeilConfig()
        self.scope = scope
        self._veil: Veil | None = None

    def warm_up(self) -> None:
        """Build (or find, if another component of this process already built it) the config's Veil."""
        self._ensure_veil()

    def _ensure_veil(self) -> Veil:
        if self._veil is None:
            self._veil = self.config.veil()
        return self._veil

    def _session(self, scope: str | None, *, fresh: bool) -> Session:
        """A session on the run's scope, else the component's; `fresh` invents one when neither is set."""
        veil = self._ensure_veil()
        chosen = scope or self.scope
        if chosen is None:
            if not fresh:
                raise ConfigError(
                    f"{type(self).__name__} needs a scope: connect the anonymizer's `scope` output to its "
                    f"`scope` input, pass scope= to run(), or set scope= on the component"
                )
            chosen = f"haystack-{uuid.uuid4().hex}"
        return veil.session(chosen)


def with_config(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of a component's `to_dict()` output with its VeilConfig rebuilt. Only VeilConfig itself is
    accepted there, so this needs no entry in Haystack's module allowlist and imports nothing named
    by the data."""
    init_parameters = dict(data.get("init_parameters", {}))
    config = init_parameters.get("config")
    if isinstance(config, dict):
        expected = generate_qualified_class_name(VeilConfig)
        if config.get("type") != expected:
            raise DeserializationError(f"'config' must be a serialized {expected}, got type {config.get('type')!r}")
        init_parameters["config"] = VeilConfig.from_dict(config)
    return {**data, "init_parameters": init_parameters}
