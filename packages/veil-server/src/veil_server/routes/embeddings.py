"""POST /v1/embeddings: inputs anonymized in a collection scope, so that a query and the documents
it should find carry the same tokens for the same values (the vault's blind index)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from veil_server.auth import Principal
from veil_server.conversation import not_anonymized_block, strip_veil_fields
from veil_server.errors import ApiError
from veil_server.jsonio import AnswerResponse
from veil_server.routes import gateway_of, principal, request_size
from veil_server.routes.chat import record_pii, start_turn
from veil_server.routes.completions import UNCHECKABLE_IDS_MESSAGE, is_token_ids
from veil_server.schemas import UPSTREAM_ERRORS, VEIL_HEADERS, EmbeddingRequest, EmbeddingResponse

router = APIRouter(tags=["OpenAI-compatible"])


@router.post(
    "/v1/embeddings", summary="Create embeddings of anonymized inputs", response_model=None,
    responses={200: {"model": EmbeddingResponse, "description": "The embeddings"}, **UPSTREAM_ERRORS},
    openapi_extra=VEIL_HEADERS,
)  # fmt: skip
async def create_embeddings(
    payload: EmbeddingRequest, request: Request, caller: Annotated[Principal, Depends(principal)]
) -> Response:
    caller.require("embeddings")
    gateway = gateway_of(request)
    body = payload.model_dump(exclude_unset=True)
    model, provider = gateway.model(payload.model, "embedding")
    ticket = await gateway.meter.admit(request, caller, "/v1/embeddings", model=payload.model)
    started = time.perf_counter()
    turn, _ = await start_turn(gateway, request, caller, body, scope=gateway.settings.server.embeddings_scope)
    outbound = strip_veil_fields(body)
    outbound["model"] = model.upstream or payload.model
    if turn is not None:
        if is_token_ids(payload.input):
            raise ApiError(400, UNCHECKABLE_IDS_MESSAGE.format(param="input"), param="input", code="invalid_request")
        anonymizing = turn

        def anonymize() -> dict[str, Any]:
            return anonymizing.anonymize_fields(outbound, data_keys=("input",))

        outbound = await gateway.run(anonymize, size=request_size(request), named=True)
    record_pii(gateway, turn, "/v1/embeddings", started, request=request, caller=caller)
    try:
        answer = await provider.post("/embeddings", outbound)
    except ApiError as exc:
        gateway.metrics.upstream_errors.labels(provider.name, str(exc.status)).inc()
        raise
    await ticket.done(answer)
    if turn is None:
        answer["veil"] = not_anonymized_block()
    else:
        block_of = turn
        answer["veil"] = await gateway.run(lambda: block_of.block(with_drift=False), named=True)
    return AnswerResponse(answer)
