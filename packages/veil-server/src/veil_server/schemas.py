"""Request and response shapes (pydantic), for validation at the edge and for /openapi.json.

Request models accept unknown fields (`extra="allow"`): OpenAI adds parameters often, and the
gateway forwards what it does not know to the upstream unchanged (after anonymizing its strings).
The veil extensions are documented on each model: `anonymize`, `anonymize_mode`, `veil_scope`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from veil_server.settings import SCOPE_NAME_PATTERN

Mode = Literal["strict", "permissive"]

SCOPE_PATTERN = f"^{SCOPE_NAME_PATTERN}$"
"""A scope's name (`veil_server.settings.valid_scope_name`), as the OpenAPI document states it."""


def one_of(values: Iterable[str]) -> dict[str, JsonValue]:
    """`json_schema_extra` of a list of names checked by the route (its error names the wrong one):
    the document lists the names the route accepts."""
    names: list[JsonValue] = [*sorted(values)]
    return {"items": {"enum": names}}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class VeilExtensions(BaseModel):
    anonymize: bool | None = Field(
        None,
        description="veil: anonymize this request (default: the API key's policy, on). "
        "The `X-Anonymize: true|false` header does the same; the body wins.",
    )
    anonymize_mode: Mode | None = Field(
        None,
        description="veil: `strict` (maximal recall) or `permissive` (precision). Header: `X-Anonymize-Mode`.",
    )
    veil_scope: str | None = Field(
        None,
        description="veil: the scope (conversation or collection) whose tokens to use, in the caller's tenant. "
        "Header: `X-Veil-Scope`. Default: a fresh in-memory scope for this request only "
        "(embeddings: the server's collection scope).",
        max_length=200,
        json_schema_extra={"pattern": f"^$|{SCOPE_PATTERN}"},  # empty: no scope
    )


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_Open):
    include_usage: bool | None = None


class ChatCompletionRequest(VeilExtensions, _Open):
    """OpenAI's CreateChatCompletionRequest; unknown fields are passed through to the upstream."""

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1, le=128)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None


class CompletionRequest(VeilExtensions, _Open):
    """OpenAI's CreateCompletionRequest (legacy completions)."""

    model: str
    prompt: str | list[str] | list[int] | list[list[int]]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    logprobs: int | None = None
    n: int | None = Field(None, ge=1, le=128)
    user: str | None = None


class EmbeddingRequest(VeilExtensions, _Open):
    """OpenAI's CreateEmbeddingRequest. Inputs are anonymized in a collection scope (consistent tokens)."""

    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


class VeilBlock(BaseModel):
    """The `veil` block added to every response (and to the last chunk of a stream)."""

    anonymized: bool
    pii_count: int = Field(description="Values replaced by tokens in what was sent upstream.")
    pii_types: list[str] = Field(description="Their entity types.")
    scope: str | None = Field(None, description="The named scope used, if any.")
    drift: dict[str, list[str]] | None = Field(
        None, description="Tokens the model dropped, altered (mangled, restored anyway) or invented."
    )
    mapping: dict[str, str] | None = Field(None, description="token → value; only for keys with `mapping:read`.")


class AnonymizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The text to anonymize.")
    scope: str | None = Field(
        None,
        max_length=200,
        description="Keep the mapping in this scope of the vault (else returned only).",
        json_schema_extra={"pattern": SCOPE_PATTERN},
    )
    existing_mapping: dict[str, str] | None = Field(
        None, description="A mapping returned earlier (token → value): its values keep their tokens."
    )
    mode: Mode | None = None
    language: Literal["en", "fr", "auto"] | None = None
    process_with_llm: bool = Field(False, description="Also send the anonymized text to `model` as a user message.")
    model: str | None = Field(None, description="The chat model for `process_with_llm`.")


class LlmResult(BaseModel):
    model: str
    raw_content: str | None = Field(description="The model's answer as it came back (tokens).")
    content: str | None = Field(description="The model's answer restored.")


class AnonymizeResponse(BaseModel):
    anonymized_text: str
    mapping: dict[str, str]
    pii_count: int
    pii_types: list[str]
    scope: str | None = None
    llm: LlmResult | None = None


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    mapping: dict[str, str] | None = Field(None, description="token → value, as returned by POST /v1/anonymize.")
    scope: str | None = Field(None, max_length=200, description="Or: restore from this scope of the vault.",
                              json_schema_extra={"pattern": SCOPE_PATTERN})  # fmt: skip


class RestoreResponse(BaseModel):
    text: str
    restored_count: int
    drift: dict[str, list[str]]


class ScanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    mode: Mode | None = None
    language: Literal["en", "fr", "auto"] | None = None
    entities: list[str] | None = Field(None, description="Report only these entities.")


class ScanSpan(BaseModel):
    start: int = Field(description="Offset of the first character (Unicode code points).")
    end: int
    entity: str
    score: float
    text: str


class ScanResponse(BaseModel):
    spans: list[ScanSpan]
    pii_count: int
    pii_types: list[str]


class ErrorObject(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every error, whatever its status (OpenAI's error shape)."""

    error: ErrorObject


class ChatCompletionResponse(_Open):
    """OpenAI's `chat.completion` (restored), plus the `veil` block. Streams send
    `chat.completion.chunk` objects as `data:` events, the `veil` block on the last one, then `data: [DONE]`."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[dict[str, Any]]
    usage: dict[str, Any] | None = None
    veil: VeilBlock


class CompletionResponse(_Open):
    """OpenAI's `text_completion` (restored), plus the `veil` block."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[dict[str, Any]]
    usage: dict[str, Any] | None = None
    veil: VeilBlock


class EmbeddingResponse(_Open):
    """OpenAI's embeddings list (vectors as floats, or base64 of little-endian float32), plus the `veil` block."""

    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    model: str
    usage: dict[str, Any] | None = None
    veil: VeilBlock


class ModelVeil(BaseModel):
    provider: str
    location: str | None = Field(description="Where the provider's servers are (data residency).")
    context_length: int | None
    category: Literal["chat", "completion", "embedding"]


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    veil: ModelVeil


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


_ERROR_MEANINGS = {
    400: "Invalid request: malformed JSON, a wrong type or value, a missing or unknown parameter",
    401: "`missing_api_key` or `invalid_api_key`",
    403: "`insufficient_scope`: the key lacks the scope this operation needs",
    404: "Not found in the caller's tenant",
    409: "The request conflicts with the state of the resource",
    413: "`request_too_large`: the body is over `server.max_body_bytes`",
    429: "`rate_limit_exceeded` or `budget_exceeded` (the key's limits), with `Retry-After`",
    500: "The upstream's own server error, passed through (its message, OpenAI shape)",
    502: "Upstream unreachable, refused the gateway's credentials, or answered something that is not JSON",
    503: "`state_unavailable`: the state database (keys, usage …) cannot be reached; nothing was done. "
    "`Retry-After` says when to retry",
    504: "Upstream timeout",
}


def error_responses(*statuses: int, **meanings: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of the errors an operation can answer, each an `ErrorResponse`.
    `meanings` replace the default description of a status, keyed `e400`, `e404` …"""
    return {
        status: {"model": ErrorResponse, "description": meanings.get(f"e{status}", _ERROR_MEANINGS[status])}
        for status in statuses
    }


AUTHENTICATED = (401, 403, 503)
"""Every operation behind an API key: the key missing or wrong, a scope missing, the key store down."""

UPSTREAM_ERRORS = error_responses(
    400, 401, 403, 404, 413, 429, 500, 502, 503, 504,
    e400="Invalid request: malformed JSON, wrong types, unknown model (`invalid_model`), or the upstream's own "
    "400, passed through",
    e403="`insufficient_scope`, or `anonymization_required` (the key may not opt out)",
    e404="The upstream does not know the model it was asked for (its error, passed through)",
    e429="The key's limits (`rate_limit_exceeded`, `budget_exceeded`), or the upstream's rate limit passed "
    "through with its `Retry-After`",
    e503="`vault_unavailable`, `anonymization_failed`, `limits_unavailable` or `state_unavailable`: refused, "
    "nothing was sent upstream",
)  # fmt: skip
"""Operations that call a model: the gateway's own errors, and the upstream's passed through."""

VEIL_HEADERS: dict[str, Any] = {
    "parameters": [
        {
            "name": "X-Anonymize", "in": "header", "required": False,
            "schema": {"type": "string", "enum": ["true", "false"]},
            "description": "veil: anonymize this request or not (also `1`/`0`, `yes`/`no`, `on`/`off`, any case). "
            "The body's `anonymize` wins.",
        },
        {
            "name": "X-Anonymize-Mode", "in": "header", "required": False,
            "schema": {"type": "string", "enum": ["strict", "permissive"]},
            "description": "veil: `strict` (maximal recall) or `permissive` (precision). "
            "The body's `anonymize_mode` wins.",
        },
        {
            "name": "X-Veil-Scope", "in": "header", "required": False,
            "schema": {"type": "string", "pattern": SCOPE_PATTERN},
            "description": "veil: the scope whose tokens to use, in the caller's tenant. The body's `veil_scope` wins.",
        },
    ]
}  # fmt: skip
"""The veil extensions sent as headers (`openapi_extra` of the model routes; read by `conversation.decide`)."""


def stream_content(chunk: str) -> dict[str, Any]:
    """The `text/event-stream` answer of a streaming route, one event at a time (OpenAPI 3.1: the
    schema of a stream describes each event): `data` is a `chunk` (a component schema) or an
    error object as JSON, or `[DONE]` at the end. `app._openapi` adds the chunk schemas."""
    payload = {"anyOf": [{"$ref": f"#/components/schemas/{chunk}"}, {"$ref": "#/components/schemas/ErrorResponse"}]}
    event = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {
                "anyOf": [
                    {"const": "[DONE]"},
                    {"type": "string", "contentMediaType": "application/json", "contentSchema": payload},
                ]
            }
        },
        "description": "With `stream: true`: `data: {chunk}` events, the `veil` block on the last chunk, then "
        '`data: [DONE]`. An error after the stream started is one `data: {"error": …}` event, and the end.',
    }
    return {"text/event-stream": {"schema": event}}


class ChatCompletionChunk(_Open):
    """OpenAI's `chat.completion.chunk` (restored); the last one carries the `veil` block."""

    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    id: str | None = None
    created: int | None = None
    model: str | None = None
    choices: list[dict[str, Any]] = Field(default_factory=list)
    usage: dict[str, Any] | None = None
    veil: VeilBlock | None = None


class CompletionChunk(_Open):
    """A streamed `text_completion` (restored); the last one carries the `veil` block."""

    object: Literal["text_completion"] = "text_completion"
    id: str | None = None
    created: int | None = None
    model: str | None = None
    choices: list[dict[str, Any]] = Field(default_factory=list)
    usage: dict[str, Any] | None = None
    veil: VeilBlock | None = None


STREAM_CHUNKS = (ChatCompletionChunk, CompletionChunk)
