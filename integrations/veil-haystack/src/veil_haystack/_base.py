"""What every veil component shares: a VeilConfig, the Veil built from it on warm-up, scopes."""

from __future__ import annotations

import uuid

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
