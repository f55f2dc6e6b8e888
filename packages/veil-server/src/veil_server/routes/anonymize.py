"""POST /v1/anonymize (text → anonymized text + mapping), PUT /v1/anonymize (restore a text with a
mapping or a scope), POST /v1/anonymization/scan (spans only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from veil.normalize import normalize_value
from veil.restore import Restorer
from veil.session import Anonymized
from veil.tokens import format_token, parse_token
from veil_server.auth import Principal
from veil_server.errors import ApiError
from veil_server.routes import gateway_of, principal, request_size
from veil_server.routes.chat import flag_pii
from veil_server.schemas import (
    AUTHENTICATED,
    UPSTREAM_ERRORS,
    AnonymizeRequest,
    AnonymizeResponse,
    LlmResult,
    RestoreRequest,
    RestoreResponse,
    ScanRequest,
    ScanResponse,
    ScanSpan,
    error_responses,
)

router = APIRouter(tags=["veil"])


def extend_mapping(text: str, result: Anonymized, existing: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Re-token a fresh anonymization against a mapping returned earlier: values already in it keep
    their tokens, new values get numbers after the highest of their entity. Returns the text and
    the whole mapping (old and new)."""
    known: dict[tuple[str, str], str] = {}
    highest: dict[str, int] = {}
    for token, value in existing.items():
        parsed = parse_token(token)
        if parsed is None:
            # The key is not quoted: a mapping written the wrong way round has a value there.
            raise ApiError(400, "existing_mapping: every key must be a veil token such as {{EMAIL_1}}",
                           param="existing_mapping", code="invalid_request")  # fmt: skip
        known[(parsed.entity, normalize_value(parsed.entity, value))] = token
        highest[parsed.entity] = max(highest.get(parsed.entity, 0), parsed.number)
    renamed: dict[str, str] = {}
    mapping = dict(existing)
    pieces: list[str] = []
    position = 0
    for replacement in result.replacements:
        span = replacement.span
        value = text[span.start : span.end]
        chosen = renamed.get(replacement.token) or known.get((span.entity, normalize_value(span.entity, value)))
        if chosen is None:
            highest[span.entity] = highest.get(span.entity, 0) + 1
            chosen = format_token(span.entity, highest[span.entity])
            mapping[chosen] = value
        renamed[replacement.token] = chosen
        pieces += [text[position : span.start], chosen]
        position = span.end
    pieces.append(text[position:])
    return "".join(pieces), mapping


def mapping_restorer(mapping: dict[str, str]) -> Restorer:
    return Restorer(mapping.get, known=lambda: list(mapping), lenient=True)


@router.post("/v1/anonymize", summary="Anonymize a text", response_model=AnonymizeResponse, responses=UPSTREAM_ERRORS)
async def anonymize_text(
    payload: AnonymizeRequest, request: Request, caller: Annotated[Principal, Depends(principal)]
) -> AnonymizeResponse:
    caller.require("anonymize")
    gateway = gateway_of(request)
    if payload.scope and payload.existing_mapping:
        raise ApiError(400, "give a scope or an existing_mapping, not both", param="existing_mapping",
                       code="invalid_request")  # fmt: skip
    provider_model = gateway.model(payload.model, "chat") if payload.process_with_llm and payload.model else None
    if payload.process_with_llm and provider_model is None:
        raise ApiError(400, "process_with_llm needs a chat `model`", param="model", code="invalid_request")
    llm_model = payload.model if provider_model is not None else None
    ticket = await gateway.meter.admit(request, caller, "/v1/anonymize", model=llm_model)
    session = gateway.session(caller.tenant, payload.scope, payload.mode or caller.policy.mode, caller.policy.entities)
    language = None if payload.language in (None, "auto") else payload.language

    def run() -> tuple[str, dict[str, str], Anonymized]:
        result = session.anonymize(payload.text, language=language)
        if payload.existing_mapping is not None:
            text, mapping = extend_mapping(payload.text, result, payload.existing_mapping)
            return text, mapping, result
        mapping = {}
        for token in dict.fromkeys(r.token for r in result.replacements):
            value = session.value_of(token)
            if value is not None:
                mapping[token] = value
        return result.text, mapping, result

    text, mapping, result = await gateway.run(run, size=request_size(request), named=payload.scope is not None)
    flag_pii(gateway, request, caller, [r.span.entity for r in result.replacements], "/v1/anonymize")
    llm, answer = None, None
    if provider_model is not None:
        model, provider = provider_model
        upstream_name = model.upstream or payload.model or ""
        answer = await provider.post(
            "/chat/completions", {"model": upstream_name, "messages": [{"role": "user", "content": text}]}
        )
        raw = _first_content(answer)
        restored = mapping_restorer(mapping).restore(raw).text if raw is not None else None
        llm = LlmResult(model=payload.model or "", raw_content=raw, content=restored)
    await ticket.done(answer)
    return AnonymizeResponse(
        anonymized_text=text, mapping=mapping, pii_count=result.pii_count, pii_types=result.pii_types,
        scope=payload.scope, llm=llm,
    )  # fmt: skip


def _first_content(answer: dict[str, Any]) -> str | None:
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


@router.put(
    "/v1/anonymize",
    summary="Restore a text (tokens back to values)",
    response_model=RestoreResponse,
    responses=error_responses(
        400,
        *AUTHENTICATED,
        413,
        429,
        e403="`insufficient_scope` (`anonymize`; restoring from a scope also needs `mapping:read`)",
        e503="`vault_unavailable`, `limits_unavailable` or `state_unavailable`",
    ),
)
async def restore_text(
    payload: RestoreRequest, request: Request, caller: Annotated[Principal, Depends(principal)]
) -> RestoreResponse:
    caller.require("anonymize")
    gateway = gateway_of(request)
    if (payload.mapping is None) == (payload.scope is None):
        raise ApiError(400, "give exactly one of mapping or scope", param="mapping", code="invalid_request")
    ticket = await gateway.meter.admit(request, caller, "/v1/anonymize")
    if payload.mapping is not None:
        restored = mapping_restorer(payload.mapping).restore(payload.text)
    else:
        assert payload.scope is not None
        # Restoring from a scope reads the vault: any token of the scope could be asked for.
        caller.require("mapping:read")
        session = gateway.session(caller.tenant, payload.scope, None)
        restored = await gateway.run(lambda: session.restore_report(payload.text, lenient=True))
    await ticket.done(None)
    return RestoreResponse(text=restored.text, restored_count=restored.count, drift=restored.drift.to_dict())


@router.post(
    "/v1/anonymization/scan",
    summary="Find personal data (spans only)",
    response_model=ScanResponse,
    responses=error_responses(
        400, *AUTHENTICATED, 413, 429, e503="`anonymization_failed`, `limits_unavailable` or `state_unavailable`"
    ),
)
async def scan(
    payload: ScanRequest, request: Request, caller: Annotated[Principal, Depends(principal)]
) -> ScanResponse:
    caller.require("scan")
    gateway = gateway_of(request)
    ticket = await gateway.meter.admit(request, caller, "/v1/anonymization/scan")
    engine = gateway.engine(payload.mode or caller.policy.mode, caller.policy.entities)
    language = None if payload.language in (None, "auto") else payload.language
    wanted = {name.upper() for name in payload.entities} if payload.entities else None
    spans = await gateway.run(lambda: engine.detect(payload.text, language), size=len(payload.text), named=False)
    found = [
        ScanSpan(start=s.start, end=s.end, entity=s.entity, score=round(s.score, 4), text=payload.text[s.start : s.end])
        for s in spans
        if wanted is None or s.entity in wanted
    ]
    await ticket.done(None)
    return ScanResponse(spans=found, pii_count=len(found), pii_types=sorted({s.entity for s in found}))
