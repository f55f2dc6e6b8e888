"""GET /v1/models and /v1/models/{model}: the configured models, each with a `veil` block saying
where it runs (provider, server location), its context length and its category."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from veil_server.auth import Principal
from veil_server.errors import ApiError, echo_name
from veil_server.gateway import Gateway
from veil_server.routes import gateway_of, principal
from veil_server.schemas import AUTHENTICATED, ModelList, ModelObject, error_responses

router = APIRouter(tags=["OpenAI-compatible"])

CREATED = 1_700_000_000


def model_object(gateway: Gateway, name: str) -> dict[str, Any]:
    model = gateway.settings.models[name]
    provider = gateway.settings.providers[model.provider]
    return {
        "id": name,
        "object": "model",
        "created": CREATED,
        "owned_by": model.owned_by or model.provider,
        "veil": {
            "provider": model.provider,
            "location": provider.location,
            "context_length": model.context_length,
            "category": model.category,
        },
    }


@router.get(
    "/v1/models",
    summary="List the models (with where each runs)",
    responses={200: {"model": ModelList, "description": "The models"}, **error_responses(*AUTHENTICATED)},
)
async def list_models(request: Request, caller: Annotated[Principal, Depends(principal)]) -> dict[str, Any]:
    caller.require("models")
    gateway = gateway_of(request)
    return {"object": "list", "data": [model_object(gateway, name) for name in gateway.settings.models]}


@router.get(
    "/v1/models/{model:path}",
    summary="Retrieve a model",
    responses={
        200: {"model": ModelObject, "description": "The model"},
        **error_responses(*AUTHENTICATED, 404, e404="`model_not_found`"),
    },
)
async def retrieve_model(
    model: str, request: Request, caller: Annotated[Principal, Depends(principal)]
) -> dict[str, Any]:
    caller.require("models")
    gateway = gateway_of(request)
    if model not in gateway.settings.models:
        raise ApiError(404, f"The model {echo_name(model, 'given')} does not exist or you do not have access to it.",
                       param="model", code="model_not_found")  # fmt: skip
    return model_object(gateway, model)
