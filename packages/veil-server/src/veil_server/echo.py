"""The built-in `echo` provider: a deterministic OpenAI-compatible model, for trials and tests.

- Chat: answers with the last message's text, streamed in chunks of a few characters. When tools
  are offered (and `tool_choice` is not "none") and the last message is the user's, it calls the
  chosen tool (else the first) with each required argument set to that message's text.
- Completions: answers with the prompt.
- Embeddings: a hashed bag of words (same text, same vector; shared words, close vectors), so
  retrieval through the gateway can be tested without a model.

It is a plain ASGI application (`create_echo_app()`): the gateway calls it in process through
httpx's ASGI transport, the same code path as a remote upstream, and tests or benchmarks can run
it under uvicorn as a local upstream that answers instantly. It sees only what the gateway sends:
anonymized text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DEFAULT_CHUNK = 4
EMBEDDING_DIMENSIONS = 64
MAX_EMBEDDING_DIMENSIONS = 4096
"""A vector is allocated whole: a request may not ask for more (OpenAI's largest model has 3,072)."""
_WORD = re.compile(r"\{\{[A-Z0-9_]+\}\}|\w+")


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part)
            for part in content
            if isinstance(part, str) or (isinstance(part, dict) and part.get("type") == "text")
        )
    return ""


def _count_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


def _chosen_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    messages = body.get("messages") or []
    if not messages or messages[-1].get("role") != "user":
        return None  # after a tool result, answer in text (an agent loop must end)
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        for tool in tools:
            if tool["function"].get("name") == wanted:
                return tool["function"]  # type: ignore[no-any-return]
    return tools[0]["function"]  # type: ignore[no-any-return]


def tool_arguments(function: dict[str, Any], text: str) -> str:
    """Each required parameter (else the first one) set to `text`."""
    parameters = function.get("parameters") or {}
    properties = parameters.get("properties") or {}
    required = [name for name in parameters.get("required") or [] if isinstance(name, str)]
    names = required or list(properties)[:1]
    return json.dumps(dict.fromkeys(names, text), ensure_ascii=False)


def _pieces(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _usage(prompt: str, completion: str) -> dict[str, int]:
    p, c = _count_tokens(prompt), _count_tokens(completion)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _error(status: int, message: str, param: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
    return JSONResponse(body, status_code=status)


async def _json(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return _error(400, "We could not parse the JSON body of your request.")
    if not isinstance(body, dict):
        return _error(400, "The request body must be a JSON object.")
    return body


async def chat_completions(request: Request, chunk: int) -> Response:
    body = await _json(request)
    if isinstance(body, JSONResponse):
        return body
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error(400, "messages must be a non-empty list", "messages")
    model = body.get("model", "echo")
    n = int(body.get("n") or 1)
    text = message_text(messages[-1])
    prompt = " ".join(message_text(m) for m in messages if isinstance(m, dict))
    tool = _chosen_tool(body)
    completion_id = f"chatcmpl-echo-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    call: dict[str, Any] | None = None
    if tool is not None:
        call = {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": tool.get("name", ""), "arguments": tool_arguments(tool, text)},
        }
    usage = _usage(prompt, call["function"]["arguments"] if call else text)
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": None if call else text, "refusal": None}
        if call:
            message["tool_calls"] = [call]
        choices = [
            {"index": i, "message": message, "logprobs": None, "finish_reason": "tool_calls" if call else "stop"}
            for i in range(n)
        ]
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": choices, "usage": usage, "system_fingerprint": "fp_echo",
        })  # fmt: skip
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "system_fingerprint": "fp_echo", "choices": choices, **extra}  # fmt: skip
        if include_usage and "usage" not in extra:
            payload["usage"] = None
        return _sse(payload)

    async def stream() -> AsyncIterator[bytes]:
        for i in range(n):
            if call:
                head = {**call, "index": 0, "function": {"name": call["function"]["name"], "arguments": ""}}
                yield event([{"index": i, "delta": {"role": "assistant", "content": None, "tool_calls": [head]},
                              "logprobs": None, "finish_reason": None}])  # fmt: skip
                for piece in _pieces(call["function"]["arguments"], chunk):
                    delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                    yield event([{"index": i, "delta": delta, "logprobs": None, "finish_reason": None}])
            else:
                yield event([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                              "finish_reason": None}])  # fmt: skip
                for piece in _pieces(text, chunk):
                    yield event([{"index": i, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}])
            finish = "tool_calls" if call else "stop"
            yield event([{"index": i, "delta": {}, "logprobs": None, "finish_reason": finish}])
        if include_usage:
            yield event([], usage=usage)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


async def completions(request: Request, chunk: int) -> Response:
    body = await _json(request)
    if isinstance(body, JSONResponse):
        return body
    prompt = body.get("prompt", "")
    prompts = [prompt] if isinstance(prompt, str) else [p for p in prompt if isinstance(p, str)]
    if not prompts:
        return _error(400, "prompt must be a string or a list of strings", "prompt")
    model = body.get("model", "echo")
    completion_id = f"cmpl-echo-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    usage = _usage(" ".join(prompts), " ".join(prompts))
    if not body.get("stream"):
        choices = [{"index": i, "text": p, "logprobs": None, "finish_reason": "stop"} for i, p in enumerate(prompts)]
        return JSONResponse({"id": completion_id, "object": "text_completion", "created": created, "model": model,
                             "choices": choices, "usage": usage})  # fmt: skip
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return _sse({"id": completion_id, "object": "text_completion", "created": created, "model": model,
                     "choices": choices, **extra})  # fmt: skip

    async def stream() -> AsyncIterator[bytes]:
        for i, text in enumerate(prompts):
            for piece in _pieces(text, chunk):
                yield event([{"index": i, "text": piece, "logprobs": None, "finish_reason": None}])
            yield event([{"index": i, "text": "", "logprobs": None, "finish_reason": "stop"}])
        if include_usage:
            yield event([], usage=usage)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


def embed(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A hashed bag of words, L2-normalised: identical texts give identical vectors."""
    vector = [0.0] * dimensions
    for found in _WORD.findall(text):
        word = found if found.startswith("{{") else found.lower()
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "little") % dimensions
        vector[bucket] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


async def embeddings(request: Request) -> Response:
    body = await _json(request)
    if isinstance(body, JSONResponse):
        return body
    raw = body.get("input")
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        inputs = raw
    elif isinstance(raw, list) and raw and all(isinstance(item, int) for item in raw):
        inputs = [" ".join(map(str, raw))]
    elif isinstance(raw, list) and raw and all(isinstance(item, list) for item in raw):
        inputs = [" ".join(map(str, item)) for item in raw]
    else:
        return _error(400, "input must be a string, a list of strings or token arrays", "input")
    dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS
    if not isinstance(dimensions, int) or not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS:
        return _error(400, f"dimensions must be an integer from 1 to {MAX_EMBEDDING_DIMENSIONS}", "dimensions")
    base64_format = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(inputs):
        vector = embed(text, dimensions)
        value: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if base64_format else vector
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = sum(_count_tokens(text) for text in inputs)
    return JSONResponse({"object": "list", "data": data, "model": body.get("model", "echo-embedding"),
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})  # fmt: skip


async def models(request: Request) -> Response:
    created = 1_700_000_000
    return JSONResponse({"object": "list", "data": [
        {"id": "echo", "object": "model", "created": created, "owned_by": "veil"},
        {"id": "echo-embedding", "object": "model", "created": created, "owned_by": "veil"},
    ]})  # fmt: skip


def create_echo_app(*, chunk: int = DEFAULT_CHUNK) -> Starlette:
    """The echo provider as an ASGI app serving /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models."""

    async def chat(request: Request) -> Response:
        return await chat_completions(request, chunk)

    async def complete(request: Request) -> Response:
        return await completions(request, chunk)

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/completions", complete, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )
