"""Providers' documented answers, replayed from vcrpy cassettes (tests/server/cassettes/) through
the gateway's own upstream client: aiohttp, as for every remote provider in production.

Each cassette holds one answer of an OpenAI-compatible server: OpenAI's chat completion, its
stream with `include_usage`, its 429 and 401; Mistral's top-level error object, its FastAPI 422
and its stream; vLLM's error with a numeric code; Ollama's bare-string error; Open WebUI's
`detail`; the SSE dialects of llama.cpp's server (`data:` without a space, no `[DONE]`),
llama-cpp-python (sse-starlette: CRLF line ends) and OpenRouter (`: OPENROUTER PROCESSING`
keep-alive comments). How they were made, and how to record one from a live provider: see
tests/server/cassettes/README.md.

The cassettes are played with `record_mode="none"`: a request that matches no cassette fails the
test, nothing ever reaches the network. What the gateway sent is captured on the way (vcrpy's
`before_record_request`): the client's canary personal data never appears in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import vcr
from fastapi.testclient import TestClient
from gateway_setup import CANARIES
from vcr.cassette import Cassette
from vcr.request import Request
from veil_server import Settings, create_app

CASSETTES = Path(__file__).with_name("cassettes")
PROVIDERS = {  # the base URL each cassette was recorded against
    "openai": "https://api.openai.com/v1",
    "mistral": "https://api.mistral.ai/v1",
    "vllm": "http://vllm.internal:8000/v1",
    "ollama": "http://ollama.internal:11434/v1",
    "openwebui": "http://openwebui.internal:3000/ollama/v1",
    "llamacpp": "http://llamacpp.internal:8080/v1",
    "llamacpp_python": "http://llamacpp-python.internal:8000/v1",
    "openrouter": "https://openrouter.ai/api/v1",
}
MESSAGE = f"Écrivez-moi à {CANARIES['email']} demain, merci."
RESTORED = f"Bien reçu : je vous écris à {CANARIES['email']} demain."


@contextmanager
def replaying(cassette: str) -> Iterator[tuple[Cassette, list[bytes]]]:
    """The cassette, played (never recorded), and the bodies of the requests the gateway sent."""
    sent: list[bytes] = []

    def capture(request: Request) -> Request:
        body = request.body  # None: a request of the cassette itself, as it is loaded
        if body is not None:
            sent.append(body if isinstance(body, bytes) else body.encode())
        return request

    player = vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode="none",
                     match_on=("method", "scheme", "host", "port", "path"), before_record_request=capture)  # fmt: skip
    with player.use_cassette(f"{cassette}.yaml") as played:
        yield played, sent


@contextmanager
def gateway(provider: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """A gateway whose model `m` is served by `provider` (its real base URL), rules-only detection."""
    monkeypatch.setenv("VEIL_TEST_PROVIDER_KEY", "sk-test-not-a-key")
    settings = Settings(
        vault={"url": "memory"},
        policy={"ner": "off"},
        providers={provider: {"base_url": PROVIDERS[provider], "api_key_env": "VEIL_TEST_PROVIDER_KEY", "retries": 0}},
        models={"m": {"provider": provider}},
    )
    with TestClient(create_app(settings)) as client:
        yield client


def chat(client: TestClient, **extra: Any) -> Any:
    return client.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": MESSAGE}],
                                                     **extra})  # fmt: skip


def stream(client: TestClient, **extra: Any) -> list[dict[str, Any]]:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": MESSAGE}], **extra}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    return [json.loads(event) for event in events[:-1]]


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])


def assert_no_canary(sent: list[bytes]) -> None:
    assert sent, "the gateway sent nothing upstream"
    assert all(value.encode() not in body for body in sent for value in CANARIES.values())
    assert all(b"{{EMAIL_1}}" in body for body in sent)  # the value went as its token


def test_openai_chat_completion_is_restored_with_its_fields_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    with replaying("openai_chat_completion") as (cassette, sent), gateway("openai", monkeypatch) as client:
        answer = chat(client)
    assert cassette.all_played
    assert answer.status_code == 200
    body = answer.json()
    message = body["choices"][0]["message"]
    assert message["content"] == RESTORED
    assert message["refusal"] is None and message["annotations"] == []
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
    assert body["service_tier"] == "default" and body["system_fingerprint"] == "fp_6f2eabb9a5"
    assert body["veil"]["pii_count"] == 1 and body["veil"]["pii_types"] == ["EMAIL"]
    assert_no_canary(sent)


def test_openai_stream_with_include_usage_ends_with_the_usage_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    with replaying("openai_chat_stream_usage") as (cassette, sent), gateway("openai", monkeypatch) as client:
        events = stream(client, stream_options={"include_usage": True})
    assert cassette.all_played
    assert text_of(events) == RESTORED  # the token arrived in three chunks
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] == 45
    assert events[-1]["veil"]["pii_count"] == 1
    assert all(e.get("usage") is None for e in events[:-1])
    assert_no_canary(sent)


@pytest.mark.parametrize(
    ("cassette", "provider", "status", "message", "code", "headers"),
    [
        ("openai_rate_limited", "openai", 429, "Rate limit reached for gpt-4.1-mini", "rate_limit_exceeded",
         {"retry-after": "20", "x-upstream-request-id": "req_5d6e7f8091a2b3c4d5e6f708192a3b4c"}),
        ("openai_invalid_api_key", "openai", 502, "refused the gateway's credentials", "upstream_auth_failed", {}),
        ("mistral_invalid_model", "mistral", 400, "Invalid model: mistral-small-lastest", "1500", {}),
        ("mistral_extra_inputs_forbidden", "mistral", 422, "body.store: Extra inputs are not permitted",
         "upstream_error", {}),
        ("vllm_bad_request", "vllm", 400, "maximum context length is 8192 tokens", "upstream_error", {}),
        ("ollama_model_not_found", "ollama", 404, 'model "llama3.2" not found, try pulling it first',
         "upstream_error", {}),
        ("openwebui_model_not_found", "openwebui", 404, "Model 'llama3.2' was not found", "upstream_error", {}),
    ],
)  # fmt: skip
def test_a_provider_s_error_becomes_an_openai_error_object_with_the_upstream_status(
    monkeypatch: pytest.MonkeyPatch, *, cassette: str, provider: str, status: int, message: str, code: str,
    headers: dict[str, str],
) -> None:  # fmt: skip
    with replaying(cassette) as (played, sent), gateway(provider, monkeypatch) as client:
        answer = chat(client)
    assert played.all_played
    assert answer.status_code == status
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert message in error["message"] and error["code"] == code
    for name, value in headers.items():
        assert answer.headers[name] == value
    assert "sk-test-not-a-key" not in answer.text
    assert_no_canary(sent)


@pytest.mark.parametrize(
    ("cassette", "provider"),
    [
        ("mistral_chat_stream", "mistral"),  # the usage rides on the finishing chunk
        ("llamacpp_stream_no_space_no_done", "llamacpp"),  # `data:{…}`, no [DONE]
        ("llamacpp_python_stream_crlf", "llamacpp_python"),  # sse-starlette: CRLF line ends
        ("openrouter_stream_comments", "openrouter"),  # `: OPENROUTER PROCESSING` keep-alives
    ],
)
def test_an_sse_dialect_is_relayed_as_openai_s_and_restored(
    monkeypatch: pytest.MonkeyPatch, cassette: str, provider: str
) -> None:
    with replaying(cassette) as (played, sent), gateway(provider, monkeypatch) as client:
        events = stream(client)
    assert played.all_played
    assert text_of(events) == RESTORED
    assert events[-1]["veil"]["pii_count"] == 1
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    assert_no_canary(sent)


def test_a_request_no_cassette_holds_fails_instead_of_reaching_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    # The guard the cassettes rely on: another provider's URL is not in this cassette, and vcrpy
    # refuses it (an exception no real upstream raises: the gateway's 500) rather than letting it out.
    with replaying("openai_chat_completion") as (played, _sent), gateway("mistral", monkeypatch) as client:
        answer = chat(client)
    assert answer.status_code == 500 and answer.json()["error"]["code"] == "internal_error"
    assert not played.all_played
