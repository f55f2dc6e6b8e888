"""`create_app(settings)`: the FastAPI application of the gateway. No module-level state: each
call builds its own Gateway (veil, vault, providers, metrics), so tests build as many as they like.

    uvicorn --factory veil_server.app:app_from_environment    # settings from $VEIL_CONFIG and VEIL_*
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import httpx
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema
from starlette.types import ASGIApp

from veil_server import __version__
from veil_server.auth import Authenticator
from veil_server.errors import install_error_handlers
from veil_server.gateway import Gateway
from veil_server.middleware import GuardMiddleware
from veil_server.routes import anonymize, chat, completions, embeddings, health, models, reversal, usage, webhooks
from veil_server.routes import keys as admin_keys
from veil_server.routes import tokens as auth_tokens
from veil_server.schemas import STREAM_CHUNKS
from veil_server.settings import Settings
from veil_server.state import StateDB

log = logging.getLogger("veil_server")

DESCRIPTION = """\
An anonymizing gateway in front of OpenAI-compatible models. Clients change only their `base_url`.

Every message, tool-call argument and tool result sent upstream is anonymized (personal data
replaced by tokens such as `{{EMAIL_1}}`); the answer, streamed or not, is restored before it
reaches the client. Responses carry a `veil` block (`anonymized`, `pii_count`, `pii_types`,
`drift`, and `mapping` for keys with the `mapping:read` scope).

veil extensions: header `X-Anonymize: true|false` or body `anonymize`; `X-Anonymize-Mode` or
`anonymize_mode` (`strict` | `permissive`); `X-Veil-Scope` or `veil_scope` (the conversation or
collection whose tokens to use). Errors are OpenAI error objects.
"""


class VeilServer(FastAPI):
    """FastAPI with the guard (body limit, metrics, last-resort errors) outside everything else."""

    guard_options: dict[str, Any]

    def build_middleware_stack(self) -> ASGIApp:
        return GuardMiddleware(super().build_middleware_stack(), **self.guard_options)


def create_app(
    settings: Settings | None = None,
    *,
    authenticator: Authenticator | None = None,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    state: StateDB | None = None,
) -> FastAPI:
    """The gateway for `settings` (default: `Settings.load()`). `authenticator` replaces the static
    keys of the configuration; `transports` replace a provider's HTTP transport (by provider name);
    `state` replaces the state database of `server.state_url`."""
    settings = settings if settings is not None else Settings.load()
    gateway = Gateway(settings, authenticator=authenticator, transports=transports, state=state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Load the detectors (NER models, when enabled) before the first request, not during it.
        await anyio.to_thread.run_sync(gateway.warm)
        await gateway.webhooks.start()
        # The upstreams' HTTP client loads while the server already answers (see veil_server.upstream).
        threading.Thread(target=gateway.prepare_upstreams, name="veil-prepare-upstreams", daemon=True).start()
        yield
        await gateway.aclose()

    app = VeilServer(
        title="veil gateway",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.guard_options = {"max_body_bytes": settings.server.max_body_bytes, "metrics": gateway.metrics}
    app.state.gateway = gateway
    install_error_handlers(app)
    for module in (chat, completions, embeddings, models, anonymize, usage, health, auth_tokens, admin_keys,
                   webhooks, reversal):  # fmt: skip
        app.include_router(module.router)
    app.openapi = lambda: _openapi(app, settings)  # type: ignore[method-assign]
    return app


SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (`sk-veil-…`) or an access token "
               "from POST /v1/auth/token: `Authorization: Bearer …`"},
    "api_key_header": {"type": "apiKey", "in": "header", "name": "api-key",
                       "description": "The same key in an `api-key` header (Azure-style clients)."},
}  # fmt: skip

# Request schemas whose `model` names a configured model, and the category it must have.
_MODEL_FIELDS = {
    "ChatCompletionRequest": "chat",
    "CompletionRequest": "chat",
    "AnonymizeRequest": "chat",
    "EmbeddingRequest": "embedding",
}


def _openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """FastAPI's schema, made to tell the truth about this gateway (tests/reliability/test_api_contract.py):
    no 422 responses (validation errors here are 400 OpenAI error objects); the chunks of the event
    streams (`schemas.stream_content`) among the component schemas; every operation that can
    answer 401 takes an API key (bearer or `api-key`); and `model` lists the models this gateway serves
    (any other name is a 400 `invalid_model`)."""
    if app.openapi_schema is None:
        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for operations in spec.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                responses.pop("422", None)
                if "401" in responses:
                    operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
        components = spec.setdefault("components", {})
        components["securitySchemes"] = SECURITY_SCHEMES
        schemas = components.setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        _, chunks = models_json_schema([(chunk, "serialization") for chunk in STREAM_CHUNKS],
                                       ref_template="#/components/schemas/{model}")  # fmt: skip
        for name, schema in chunks.get("$defs", {}).items():
            schemas.setdefault(name, schema)
        for name, category in _MODEL_FIELDS.items():
            served = sorted(model for model, found in settings.models.items() if (found.category == "embedding")
                            == (category == "embedding"))  # fmt: skip
            field = schemas.get(name, {}).get("properties", {}).get("model")
            if field is not None and served:
                _name_models(field, served)
        app.openapi_schema = spec
    return app.openapi_schema


def _name_models(field: dict[str, Any], served: list[str]) -> None:
    """The string branch of a `model` property becomes an enum of the configured models."""
    for branch in [field, *field.get("anyOf", [])]:
        if branch.get("type") == "string":
            branch["enum"] = served
            branch["description"] = "One of this gateway's models (GET /v1/models)."


def app_from_environment() -> FastAPI:
    """For `uvicorn --factory` and worker processes: settings from $VEIL_CONFIG and VEIL_* variables."""
    return create_app(Settings.load())
