"""Every error is an OpenAI error object with the status the SDKs map to their exception types;
never FastAPI's 422 body, never a stack trace; upstream failures keep their meaning; a vault that
is down refuses the request before anything is sent upstream (fail closed)."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from gateway_setup import CANARIES, CANARY_TEXT, gateway_settings
from server_live import RecordingUpstream, closed_port, serve
from veil_server import create_app

USER = [{"role": "user", "content": CANARY_TEXT}]


def assert_error_object(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text and "detail" not in response.json()
    if code is not None:
        assert error["code"] == code
    return error


def post(base_url: str, path: str, key: str | None = "sk-veil-test", **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers.update(kwargs.pop("headers", {}))
    return httpx.post(f"{base_url}{path}", headers=headers, timeout=20, **kwargs)


def test_missing_and_wrong_keys_are_authentication_errors(base_url: str, upstream: RecordingUpstream) -> None:
    sdk = openai.OpenAI(base_url=base_url, api_key="sk-wrong-1234", max_retries=0)
    with sdk, pytest.raises(openai.AuthenticationError) as wrong:
        sdk.chat.completions.create(model="gpt-test", messages=USER)
    assert wrong.value.code == "invalid_api_key"
    assert "1234" in wrong.value.message and "sk-wrong" not in wrong.value.message
    missing = post(base_url, "/chat/completions", key=None, json={"model": "gpt-test", "messages": USER})
    assert_error_object(missing, 401, "missing_api_key")
    assert not upstream.requests


def test_a_key_without_the_scope_is_refused(base_url: str, upstream: RecordingUpstream) -> None:
    sdk = openai.OpenAI(base_url=base_url, api_key="sk-veil-scan", max_retries=0)
    with sdk, pytest.raises(openai.PermissionDeniedError) as refused:
        sdk.chat.completions.create(model="gpt-test", messages=USER)
    assert refused.value.code == "insufficient_scope"
    assert not upstream.requests


def test_unknown_model_is_a_bad_request(client: openai.OpenAI, upstream: RecordingUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="gpt-nope", messages=USER)
    assert bad.value.code == "invalid_model" and bad.value.param == "model"
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="gpt-test", input="x")  # a chat model is not an embedding model


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt-test"}, "messages"),
        ({"model": "gpt-test", "messages": "hello"}, "messages"),
        ({"model": "gpt-test", "messages": []}, "messages"),
        ({"model": "gpt-test", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"model": "gpt-test", "messages": [{"role": "user", "content": "x"}], "n": 0}, "n"),
        ({"model": 42, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "gpt-test", "messages": [{"role": "user", "content": "x"}], "anonymize": "maybe"}, "anonymize"),
    ],
)
def test_invalid_bodies_are_400_error_objects_never_422(
    base_url: str, upstream: RecordingUpstream, body: dict[str, Any], param: str
) -> None:
    error = assert_error_object(post(base_url, "/chat/completions", json=body), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert not upstream.requests


def test_malformed_json_is_a_400_error_object(base_url: str, upstream: RecordingUpstream) -> None:
    response = post(base_url, "/chat/completions", content=b'{"model": "gpt-test", "messages": [',
                    headers={"Content-Type": "application/json"})  # fmt: skip
    assert "parse the JSON body" in assert_error_object(response, 400)["message"]
    wrong_type = post(base_url, "/chat/completions", content=b"[1, 2]",
                      headers={"Content-Type": "application/json"})  # fmt: skip
    assert_error_object(wrong_type, 400)


def test_an_oversized_body_is_413_whether_its_length_is_announced_or_not(
    base_url: str, upstream: RecordingUpstream
) -> None:
    big = {"model": "gpt-test", "messages": [{"role": "user", "content": "x" * 70_000}]}
    assert_error_object(post(base_url, "/chat/completions", json=big), 413, "request_too_large")

    def chunked() -> Any:
        yield b'{"model": "gpt-test", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 8000
        yield b'"}]}'

    response = post(base_url, "/chat/completions", content=chunked(),
                    headers={"Content-Type": "application/json"})  # fmt: skip
    assert_error_object(response, 413, "request_too_large")
    assert not upstream.requests


def test_unknown_urls_and_methods_are_error_objects(base_url: str) -> None:
    assert_error_object(post(base_url, "/nothing/here", json={}), 404)
    assert_error_object(httpx.get(f"{base_url}/chat/completions", headers={"Authorization": "Bearer sk-veil-test"}),
                        405)  # fmt: skip


def test_upstream_rate_limit_stays_429_with_its_retry_after(client: openai.OpenAI, upstream: RecordingUpstream) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="fail-429", messages=USER)
    assert limited.value.status_code == 429
    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.response.headers["retry-after"] == "7"
    assert CANARIES["email"] not in upstream.bodies()


def test_upstream_failures_become_5xx_error_objects(client: openai.OpenAI, upstream: RecordingUpstream) -> None:
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model="fail-500", messages=USER)
    assert failed.value.status_code == 500
    with pytest.raises(openai.APIStatusError) as garbage:
        client.chat.completions.create(model="not-json", messages=USER)
    assert garbage.value.status_code == 502 and garbage.value.code == "upstream_invalid_response"
    with pytest.raises(openai.APIStatusError) as down:
        client.chat.completions.create(model="down-model", messages=USER)
    assert down.value.status_code == 502 and down.value.code == "upstream_unreachable"


def test_a_slow_upstream_times_out_as_504(client: openai.OpenAI, upstream: RecordingUpstream) -> None:
    with pytest.raises(openai.APIStatusError) as slow:
        client.chat.completions.create(model="slow", messages=USER)
    assert slow.value.status_code == 504 and slow.value.code == "upstream_timeout"
    with pytest.raises(openai.APIStatusError) as slow_stream:
        client.chat.completions.create(model="slow", messages=USER, stream=True)
    assert slow_stream.value.status_code == 504


def test_streamed_upstream_errors_before_the_first_chunk_keep_their_status(
    client: openai.OpenAI, upstream: RecordingUpstream
) -> None:
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fail-429", messages=USER, stream=True)


def test_an_error_in_the_middle_of_a_stream_reaches_the_sdk_as_an_api_error(
    client: openai.OpenAI, upstream: RecordingUpstream
) -> None:
    stream = client.chat.completions.create(model="break", messages=USER, stream=True)
    received: list[str | None] = []

    def consume() -> None:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)

    with pytest.raises(openai.APIError) as broken:
        consume()
    assert "crashed" in broken.value.message
    assert "".join(filter(None, received)) == "Bonjour"


def test_a_stream_cut_short_by_the_upstream_ends_with_an_error(
    client: openai.OpenAI, upstream: RecordingUpstream
) -> None:
    with pytest.raises(openai.APIError) as cut:
        list(client.chat.completions.create(model="cut", messages=USER, stream=True))
    assert "ended" in cut.value.message


def test_a_client_leaving_mid_stream_cancels_the_upstream_request(base_url: str, upstream: RecordingUpstream) -> None:
    body = {"model": "stall", "messages": USER, "stream": True}
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body,
                      headers={"Authorization": "Bearer sk-veil-test"}, timeout=20) as response:  # fmt: skip
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    # The client closed its connection: the gateway must close the upstream request.
    assert upstream.disconnect_seen.wait(timeout=10)
    assert upstream.disconnected == ["http.disconnect"]


@pytest.fixture
def redis_url() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A redis-server of this test's own on loopback (the test stops it to take the vault down)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is required under CI")
        pytest.skip("redis-server is not installed")
    port = closed_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:  # wait for the server's own word, not a timer
        if "Ready to accept connections" in line:
            break
    yield f"redis://127.0.0.1:{port}/0", process
    process.kill()
    process.wait(timeout=10)


def test_a_vault_that_goes_down_refuses_requests_and_sends_nothing_upstream(
    upstream_server: tuple[RecordingUpstream, str],
    redis_url: tuple[str, subprocess.Popen[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder, upstream_url = upstream_server
    url_of_vault, redis_process = redis_url
    monkeypatch.setenv("VEIL_KEK", base64.b64encode(os.urandom(32)).decode())
    settings = gateway_settings(upstream_url, vault={"url": url_of_vault, "keys": "env"})
    with serve(create_app(settings)) as url, openai.OpenAI(base_url=f"{url}/v1", api_key="sk-veil-test",
                                                           max_retries=0) as sdk:  # fmt: skip
        scoped = {"X-Veil-Scope": "conversation-1"}
        working = sdk.chat.completions.create(model="gpt-test", messages=USER, extra_headers=scoped)
        assert working.choices[0].message.content == CANARY_TEXT
        checks = httpx.get(f"{url}/readyz").json()["checks"]
        assert checks["vault"] == "ok" and checks["upstream:recording"] == "ok"
        assert checks["upstream:down"] == "upstream_unreachable"
        redis_process.kill()
        redis_process.wait(timeout=10)
        recorder.clear()
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as refused:
                sdk.chat.completions.create(
                    model="gpt-test", messages=[{"role": "user", "content": f"Nouveau : {CANARIES['card']}"}],
                    stream=stream, extra_headers=scoped,
                )  # fmt: skip
            assert refused.value.status_code == 503
            assert refused.value.code == "vault_unavailable"
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["vault"].startswith("unavailable")
    assert not [r for r in recorder.requests if r.path != "/v1/models"]  # /readyz asked for the model list
