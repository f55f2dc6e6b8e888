"""POST /v1/chat/completions: anonymize the conversation, call the model, restore its answer."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from veil_server.auth import Principal
from veil_server.conversation import Turn, decide, not_anonymized_block, strip_veil_fields
from veil_server.errors import ApiError
from veil_server.events import flagged_event
from veil_server.gateway import Gateway
from veil_server.jsonio import AnswerResponse
from veil_server.routes import gateway_of, principal, request_size
from veil_server.schemas import (
    UPSTREAM_ERRORS,
    VEIL_HEADERS,
    ChatCompletionRequest,
    ChatCompletionResponse,
    stream_content,
)
from veil_server.stream import EventStreamResponse, relay

router = APIRouter(tags=["OpenAI-compatible"])

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def start_turn(
    gateway: Gateway, request: Request, caller: Principal, body: dict[str, Any], *, scope: str | None = None
) -> tuple[Turn | None, Any]:
    """Decide and, if anonymizing, open the request's session. Returns (turn or None, decision)."""
    decision = decide(request, body, caller)
    if not decision.anonymize:
        return None, decision
    chosen = decision.scope or scope
    session = gateway.session(caller.tenant, chosen, decision.mode, caller.policy.entities)
    turn = Turn(session, named_scope=chosen is not None, show_mapping=caller.allows("mapping:read"))
    return turn, decision


def record_pii(
    gateway: Gateway, turn: Turn | None, endpoint: str, started: float, *, request: Request | None = None,
    caller: Principal | None = None,
) -> None:  # fmt: skip
    gateway.metrics.anonymize_seconds.labels(endpoint).observe(time.perf_counter() - started)
    if turn is not None:
        for replacement in turn.replacements:
            gateway.metrics.pii.labels(replacement.span.entity).inc()
        if request is not None and caller is not None:
            flag_pii(gateway, request, caller, [r.span.entity for r in turn.replacements], endpoint)


def flag_pii(gateway: Gateway, request: Request, caller: Principal, entities: list[str], endpoint: str) -> None:
    """`anonymize.flagged` when this request carried the key's (else the server's) threshold of values."""
    threshold = caller.policy.flag_threshold or gateway.settings.server.webhooks.flag_threshold
    if threshold is None or len(entities) < threshold:
        return
    request_id = getattr(request.state, "request_id", None) or f"req_{uuid.uuid4().hex[:24]}"
    request.state.request_id = request_id
    event = flagged_event(tenant=caller.tenant, key_id=caller.key_id, request_id=request_id, endpoint=endpoint,
                          entities=entities, threshold=threshold)  # fmt: skip
    if event is not None:
        gateway.events.emit(event)


@router.post(
    "/v1/chat/completions",
    summary="Create a chat completion (anonymized, restored)",
    response_model=None,
    responses={200: {"model": ChatCompletionResponse, "description": "A chat.completion with a `veil` block; "
                     "with `stream: true`, an SSE stream of chat.completion.chunk objects ending with `data: [DONE]`.",
                     "content": stream_content("ChatCompletionChunk")},
               **UPSTREAM_ERRORS},
    openapi_extra=VEIL_HEADERS,
)  # fmt: skip
async def create_chat_completion(
    payload: ChatCompletionRequest, request: Request, caller: Annotated[Principal, Depends(principal)]
) -> Response:
    caller.require("chat")
    gateway = gateway_of(request)
    body = payload.model_dump(exclude_unset=True)
    model, provider = gateway.model(payload.model, "chat")
    ticket = await gateway.meter.admit(request, caller, "/v1/chat/completions", model=payload.model, body=body)
    started = time.perf_counter()
    turn, _ = await start_turn(gateway, request, caller, body)
    outbound = strip_veil_fields(body)
    outbound["model"] = model.upstream or payload.model
    if turn is not None:
        anonymizing = turn
        outbound = await gateway.run(
            lambda: anonymizing.anonymize_chat(outbound), size=request_size(request), named=turn.named_scope
        )
    record_pii(gateway, turn, "/v1/chat/completions", started, request=request, caller=caller)
    upstream_started = time.perf_counter()
    if payload.stream:
        try:
            upstream = await provider.open_stream("/chat/completions", outbound)
        except ApiError as exc:
            gateway.metrics.upstream_errors.labels(provider.name, str(exc.status)).inc()
            raise
        gateway.metrics.upstream_latency.labels(provider.name).observe(time.perf_counter() - upstream_started)
        stream = relay(upstream, turn, kind="chat", metrics=gateway.metrics, endpoint="/v1/chat/completions",
                       ticket=ticket)  # fmt: skip
        return EventStreamResponse(stream, media_type="text/event-stream", headers=STREAM_HEADERS)
    try:
        answer = await provider.post("/chat/completions", outbound)
    except ApiError as exc:
        gateway.metrics.upstream_errors.labels(provider.name, str(exc.status)).inc()
        raise
    gateway.metrics.upstream_latency.labels(provider.name).observe(time.perf_counter() - upstream_started)
    await ticket.done(answer)
    if turn is None:
        answer["veil"] = not_anonymized_block()
        return AnswerResponse(answer)
    restoring = turn

    def restore() -> dict[str, Any]:
        choices = answer.get("choices")
        if isinstance(choices, list):
            answer["choices"] = [
                {**choice, "message": restoring.restore_chat_message(choice["message"])}
                if isinstance(choice, dict) and isinstance(choice.get("message"), dict)
                else choice
                for choice in choices
            ]
        answer["veil"] = restoring.block()
        return answer

    return AnswerResponse(await gateway.run(restore, named=turn.named_scope))
