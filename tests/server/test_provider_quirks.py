"""Documented quirks of OpenAI-compatible servers (Mistral, vLLM, Ollama, llama.cpp), replayed by a
deterministic fake upstream (httpx.MockTransport in place of the provider's network transport):
their error shapes become OpenAI error objects with the upstream's status, and their SSE dialects
(no space after `data:`, CRLF line ends, comments and `event:` lines, no `[DONE]`) are relayed
and restored like OpenAI's."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from gateway_setup import CANARIES
from veil_server import Settings, create_app

from veil.detect.policy import Policy

Handler = Callable[[httpx.Request], httpx.Response]


def gateway(handler: Handler, seen: list[bytes]) -> TestClient:
    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return handler(request)

    settings = Settings(
        vault={"url": "memory"},
        policy={"ner": "off"} if "ner" in Policy.__dataclass_fields__ else {},
        providers={"quirky": {"base_url": "http://quirky.invalid/v1"}},
        models={"m": {"provider": "quirky"}},
    )
    app = create_app(settings, transports={"quirky": httpx.MockTransport(recording)})
    return TestClient(app)


def error(status: int, body: Any) -> Handler:
    return lambda request: httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("status", "body", "message", "code"),
    [
        # Mistral: the error object at the top level
        (
            422,
            {"object": "error", "message": "Invalid model: m", "type": "invalid_model", "param": None, "code": "1500"},
            "Invalid model: m",
            "1500",
        ),
        # vLLM: top level too, with a numeric code
        (
            400,
            {
                "object": "error",
                "message": "max_tokens is too large",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
            "max_tokens is too large",
            "upstream_error",
        ),
        # Ollama and llama.cpp: a bare string
        (
            404,
            {"error": "model 'm' not found, try pulling it first"},
            "model 'm' not found, try pulling it first",
            "upstream_error",
        ),
        # OpenAI itself
        (
            429,
            {
                "error": {
                    "message": "Rate limit reached",
                    "type": "requests",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            },
            "Rate limit reached",
            "rate_limit_exceeded",
        ),
    ],
)
def test_provider_error_shapes_become_openai_error_objects_with_the_upstream_status(
    status: int, body: dict[str, Any], message: str, code: str
) -> None:
    seen: list[bytes] = []
    with gateway(error(status, body), seen) as client:
        response = client.post("/v1/chat/completions", json={"model": "m", "messages": [
            {"role": "user", "content": CANARIES["email"]}]})  # fmt: skip
    assert response.status_code == status
    got = response.json()["error"]
    assert got["message"] == message and got["code"] == code
    assert set(got) == {"message", "type", "param", "code"}
    assert CANARIES["email"].encode() not in b"".join(seen)


def sse(lines: list[str], newline: str = "\n") -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=newline.join(lines).encode(), headers={"content-type": "text/event-stream"})

    return handler


def chunk(content: str | None, finish: str | None = None) -> str:
    delta = {} if content is None else {"content": content}
    return json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})  # fmt: skip


def stream_text(client: TestClient, content: str) -> tuple[str, list[dict[str, Any]]]:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": content}]}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    payloads = [json.loads(event) for event in events[:-1]]
    text = "".join((p["choices"][0]["delta"].get("content") or "") for p in payloads if p["choices"])
    return text, payloads


@pytest.mark.parametrize(
    ("name", "make"),
    [
        (
            "no space after data:, no [DONE] (some llama.cpp builds)",
            lambda parts: sse([f"data:{chunk(p)}\n" for p in parts] + [f"data:{chunk(None, 'stop')}\n"]),
        ),
        (
            "CRLF line ends",
            lambda parts: sse(
                [f"data: {chunk(p)}\r\n" for p in parts] + [f"data: {chunk(None, 'stop')}\r\n", "data: [DONE]\r\n"],
                "\r\n",
            ),
        ),
        (
            "comments, event and id lines (keep-alives)",
            lambda parts: sse(
                [": keep-alive\n"]
                + [f"id: {i}\nevent: message\ndata: {chunk(p)}\n" for i, p in enumerate(parts)]
                + [f"data: {chunk(None, 'stop')}\n", "data: [DONE]\n"]
            ),
        ),
    ],
)
def test_sse_dialects_are_relayed_and_restored(name: str, make: Callable[[list[str]], Handler]) -> None:
    token_split = ["Écrivez à {{EM", "AIL_", "1}} merci"]
    seen: list[bytes] = []
    with gateway(make(token_split), seen) as client:
        text, payloads = stream_text(client, f"Écrivez à {CANARIES['email']} merci")
    assert text == f"Écrivez à {CANARIES['email']} merci", name
    assert payloads[-1]["veil"]["pii_count"] == 1
    assert CANARIES["email"].encode() not in b"".join(seen)
