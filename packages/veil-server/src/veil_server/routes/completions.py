"""POST /v1/completions (legacy): the prompt anonymized, the text of each choice restored."""

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
from veil_server.routes.chat import STREAM_HEADERS, record_pii, start_turn
from veil_server.schemas import (
    UPSTREAM_ERRORS,
    VEIL_HEADERS,
    CompletionRequest,
    CompletionResponse,
    stream_content,
)
from veil_server.stream import EventStreamResponse, relay

router = APIRouter(tags=["OpenAI-compatible"])

UNCHECKABLE_IDS_MESSAGE = (
    "{param} given as token ids cannot be checked for personal data: send text, or turn anonymization off"
)


def is_token_ids(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and not all(isinstance(item, str) for item in value)


@router.post(
    "/v1/completions", summary="Create a completion (anonymized, restored)", response_model=None,
    responses={200: {"model": CompletionResponse, "description": "A text_completion, or an SSE stream",
                     "content": stream_content("CompletionChunk")},
               **UPSTREAM_ERRORS},
    openapi_extra=VEIL_HEADERS,
)  # fmt: skip
async def create_completion(
    payload: CompletionRequest, request: Request, caller: Annotated[Principal, Depends(principal)]
) -> Response:
    caller.require("chat")
    gateway = gateway_of(request)
    body = payload.model_dump(exclude_unset=True)
    model, provider = gateway.model(payload.model, "completion")
    ticket = await gateway.meter.admit(request, caller, "/v1/completions", model=payload.model, body=body)
    started = time.perf_counter()
    turn, _ = await start_turn(gateway, request, caller, body)
    outbound = strip_veil_fields(body)
    outbound["model"] = model.upstream or payload.model
    if turn is not None:
        if is_token_ids(payload.prompt):
            raise ApiError(400, UNCHECKABLE_IDS_MESSAGE.format(param="prompt"), param="prompt", code="invalid_request")
        anonymizing = turn

        def anonymize() -> dict[str, Any]:
            out = anonymizing.anonymize_fields(outbound, data_keys=("prompt",))
            anonymizing.warm()
            return out

        outbound = await gateway.run(anonymize, size=request_size(request), named=turn.named_scope)
    record_pii(gateway, turn, "/v1/completions", started, request=request, caller=caller)
    try:
        if payload.stream:
            upstream = await provider.open_stream("/completions", outbound)
            stream = relay(upstream, turn, kind="completion", metrics=gateway.metrics, endpoint="/v1/completions",
                           ticket=ticket)  # fmt: skip
            return EventStreamResponse(stream, media_type="text/event-stream", headers=STREAM_HEADERS)
        answer = await provider.post("/completions", outbound)
    except ApiError as exc:
        gateway.metrics.upstream_errors.labels(provider.name, str(exc.status)).inc()
        raise
    await ticket.done(answer)
    if turn is None:
        answer["veil"] = not_anonymized_block()
        return AnswerResponse(answer)
    restoring = turn

    def restore() -> dict[str, Any]:
        for choice in answer.get("choices") or ():
            if isinstance(choice, dict) and isinstance(choice.get("text"), str):
                choice["text"] = restoring.restore_text(choice["text"])
        answer["veil"] = restoring.block()
        return answer

    return AnswerResponse(await gateway.run(restore, named=turn.named_scope))
