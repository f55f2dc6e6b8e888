"""The leak test: canary personal data sent by real clients through every endpoint that reaches a
model never arrives at the recording upstream, whatever the shape it travels in."""

from __future__ import annotations

import json

import httpx
import openai
from gateway_setup import CANARIES, CANARY_TEXT
from server_live import RecordingUpstream
from test_chat_openai_sdk import TOOLS


def spaced_variants(value: str) -> set[str]:
    """The value as written, without spaces, and JSON-escaped (as it would sit in a body)."""
    return {value, value.replace(" ", ""), json.dumps(value)[1:-1]}


def test_no_canary_reaches_the_upstream_through_any_endpoint(
    client: openai.OpenAI, base_url: str, upstream: RecordingUpstream
) -> None:
    scoped = {"X-Veil-Scope": "leak-test"}
    user = [{"role": "user", "content": CANARY_TEXT}]
    client.chat.completions.create(model="gpt-test", messages=user)
    client.chat.completions.create(model="gpt-test", messages=user, extra_headers=scoped)
    list(client.chat.completions.create(model="gpt-test", messages=user, stream=True,
                                        stream_options={"include_usage": True}))  # fmt: skip
    client.chat.completions.create(model="gpt-test", messages=user, tools=TOOLS)
    list(client.chat.completions.create(model="gpt-test", messages=user, tools=TOOLS, stream=True))
    client.chat.completions.create(
        model="gpt-test", user=CANARIES["email"], extra_body={"metadata_note": CANARY_TEXT},
        messages=[
            {"role": "system", "content": f"Le client s'appelle {CANARIES['email']}."},
            {"role": "user", "content": [{"type": "text", "text": CANARY_TEXT}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
                "name": "send_email", "arguments": json.dumps({"body": CANARY_TEXT})}}]},
            {"role": "tool", "tool_call_id": "c1", "content": json.dumps({"card": CANARIES["card"]})},
        ],
    )  # fmt: skip
    client.completions.create(model="gpt-test", prompt=CANARY_TEXT)
    list(client.completions.create(model="gpt-test", prompt=[CANARY_TEXT], stream=True))
    client.embeddings.create(model="embed-test", input=[CANARY_TEXT, CANARIES["sin"]])
    client.embeddings.create(model="embed-test", input=CANARY_TEXT, encoding_format="float")
    processed = {"text": CANARY_TEXT, "process_with_llm": True, "model": "gpt-test"}
    httpx.post(
        f"{base_url}/anonymize", headers={"Authorization": "Bearer sk-veil-test"}, json=processed
    ).raise_for_status()

    paths = {r.path for r in upstream.requests}
    assert paths == {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"}
    assert len(upstream.requests) == 11
    seen = upstream.bodies()
    for name, value in CANARIES.items():
        for variant in spaced_variants(value):
            assert variant not in seen, f"the upstream received the {name} ({variant!r})"
    assert "{{EMAIL_1}}" in seen and "{{CA_SIN_1}}" in seen and "{{CREDIT_CARD_1}}" in seen
