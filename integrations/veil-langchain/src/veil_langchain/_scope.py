"""Which scope a run uses, and the session on it.

A scope holds one mapping (token ↔ value). A run takes its scope from, in order: a `veil_scope`
keyword argument, `config["configurable"]["veil_scope"]`, the component's own `scope` field. A
component without a scope gives each run a scope of its own, erased when the run ends: mappings
of two runs (two users, two conversations) never meet, and nothing outlives the run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from langchain_core.runnables import ConfigurableFieldSpec, RunnableConfig

from veil import ConfigError, Session, Veil

SCOPE_KEY = "veil_scope"

SCOPE_SPEC = ConfigurableFieldSpec(
    id=SCOPE_KEY,
    annotation=str,
    name="veil scope",
    description="The veil scope (conversation or collection) whose mapping this run uses.",
    default=None,
    is_shared=True,
)


def scope_from_config(config: RunnableConfig | None) -> str | None:
    if not config:
        return None
    configurable = config.get("configurable")
    scope = configurable.get(SCOPE_KEY) if isinstance(configurable, Mapping) else None
    if scope is not None and (not isinstance(scope, str) or not scope):
        raise ConfigError(f"config['configurable'][{SCOPE_KEY!r}] must be a non-empty string")
    return scope


def pop_scope(kwargs: dict[str, Any]) -> str | None:
    scope = kwargs.pop(SCOPE_KEY, None)
    if scope is not None and (not isinstance(scope, str) or not scope):
        raise ConfigError(f"{SCOPE_KEY} must be a non-empty string")
    return scope


@contextmanager
def run_session(
    veil: Veil, scope: str | None, *, tenant: str | None = None, subject: str | None = None
) -> Iterator[Session]:
    """A session on `scope`, or on a fresh scope erased when the block ends."""
    if scope is not None:
        yield veil.session(scope, tenant=tenant, subject=subject)
        return
    ephemeral = f"run-{uuid.uuid4().hex}"
    session = veil.session(ephemeral, tenant=tenant, subject=subject)
    try:
        yield session
    except BaseException:
        veil.erase_scope(ephemeral, tenant=tenant)
        raise
    if session.sent_tokens:  # a run that found nothing stored nothing: no erase to record
        veil.erase_scope(ephemeral, tenant=tenant)
