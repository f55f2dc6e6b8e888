"""Chat completions through the gateway with the official `openai` SDK, unchanged but for base_url.

The recording upstream (a real OpenAI-compatible server on loopback) must never see the canary
personal data; the client must get it back, restored, streamed or not, in text and tool calls.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from gateway_setup import CANARIES, CANARY_TEXT
from server_live import RecordingUpstream

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "send_email",
            "description": "Send an e-mail to a customer",
            "parameters": {
                "type": "object",
                "properties": {"body": {"type": "string"}, "subject": {"type": "string"}},
                "required": ["body"],
            },
        },
    }
]


def assert_no_canary(upstream: RecordingUpstream) -> None:
    seen = upstream.bodies()
    assert upstream.requests, "the upstream received nothing"
    for name, value in CANARIES.items():
        assert value not in seen, f"the upstream saw the {name}"
        assert value.replace(" ", "") not in seen.replace(" ", ""), f"the upstream saw the {name} (spaces removed)"


def veil_block(response: Any) -> dict[str, Any]:
    block = (response.model_extra or {}).get("veil")
    assert isinstance(block, dict)
    return block


def test_chat_answer_is_restored_and_the_upstream_sees_only_tokens(client: openai.OpenAI, upstream) -> None:
    response = client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": CANARY_TEXT}],
    )
    assert response.choices[0].message.content == CANARY_TEXT
    assert response.object == "chat.completion"
    assert_no_canary(upstream)
    sent = upstream.requests[0].json()
    assert "{{EMAIL_1}}" in sent["messages"][1]["content"]
    assert sent["model"] == "echo"  # the configured upstream name
    assert "anonymize" not in sent and "veil_scope" not in sent
    block = veil_block(response)
    assert block["anonymized"] is True
    assert block["pii_count"] == 4
    assert set(block["pii_types"]) >= {"EMAIL", "PHONE", "CA_SIN"}
    assert block["drift"] == {"dropped": [], "altered": [], "invented": []}
    assert "mapping" not in block  # only for keys with mapping:read


def test_streamed_answer_is_restored_chunk_by_chunk_without_half_tokens(client: openai.OpenAI, upstream) -> None:
    stream = client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": CANARY_TEXT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(pieces) == CANARY_TEXT
    assert all("{{" not in piece and "}}" not in piece for piece in pieces)
    assert len([p for p in pieces if p]) > 10, "the answer was buffered instead of streamed"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None and usage_chunk.usage.total_tokens > 0
    assert veil_block(usage_chunk)["pii_count"] == 4
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert_no_canary(upstream)


def test_the_sse_stream_is_data_only_with_exactly_one_done(base_url: str, upstream) -> None:
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": CANARY_TEXT}], "stream": True}
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body,
                      headers={"Authorization": "Bearer sk-veil-test"}) as response:  # fmt: skip
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    events = [block for block in text.split("\n\n") if block]
    assert all(block.startswith("data: ") and "\n" not in block for block in events)
    assert events[-1] == "data: [DONE]" and text.count("[DONE]") == 1
    payloads = [json.loads(block[6:]) for block in events[:-1]]
    assert "veil" in payloads[-1] and payloads[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in p or p["usage"] is None for p in payloads)  # not asked for


@pytest.mark.anyio
async def test_async_client_streams_and_restores(base_url: str, upstream) -> None:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="sk-veil-test", max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": CANARY_TEXT}], stream=True
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
        unary = await sdk.chat.completions.create(model="echo", messages=[{"role": "user", "content": CANARY_TEXT}])
    assert text == CANARY_TEXT
    assert unary.choices[0].message.content == CANARY_TEXT
    assert_no_canary(upstream)


def test_tool_call_arguments_are_anonymized_upstream_and_restored_for_the_client(
    client: openai.OpenAI, upstream
) -> None:
    response = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": CANARY_TEXT}], tools=TOOLS, tool_choice="auto"
    )
    call = response.choices[0].message.tool_calls[0]
    assert response.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "send_email"
    assert json.loads(call.function.arguments) == {"body": CANARY_TEXT}
    assert_no_canary(upstream)
    assert upstream.requests[0].json()["tools"] == TOOLS  # tool definitions go through untouched


def test_streamed_tool_call_arguments_are_restored_as_valid_json(client: openai.OpenAI, upstream) -> None:
    text = CANARY_TEXT + ' Il a dit : "appelez-moi".'
    stream = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": text}], tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "send_email"}}, stream=True,
    )  # fmt: skip
    arguments = ""
    names = []
    for chunk in stream:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            names += [call.function.name] if call.function and call.function.name else []
            arguments += call.function.arguments or "" if call.function else ""
    assert names == ["send_email"]
    assert json.loads(arguments) == {"body": text}
    assert_no_canary(upstream)


def test_tool_results_and_earlier_tool_calls_are_anonymized_before_the_model(client: openai.OpenAI, upstream) -> None:
    messages = [
        {"role": "user", "content": "Trouve le dossier du client."},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "lookup", "arguments": json.dumps({"email": CANARIES["email"]})},
        }]},
        {"role": "tool", "tool_call_id": "call_1", "content": f"Client: NAS {CANARIES['sin']}, {CANARIES['phone']}"},
    ]  # fmt: skip
    response = client.chat.completions.create(model="gpt-test", messages=messages, tools=TOOLS)
    assert response.choices[0].message.content == messages[2]["content"]  # echo answers the tool result
    assert_no_canary(upstream)
    sent = upstream.requests[0].json()["messages"]
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"email": "{{EMAIL_1}}"}
    assert sent[2]["tool_call_id"] == "call_1"


def test_content_parts_and_several_choices_are_each_restored(client: openai.OpenAI, upstream) -> None:
    response = client.chat.completions.create(
        model="gpt-test", n=2,
        messages=[{"role": "user", "content": [{"type": "text", "text": "Mon courriel : "},
                                               {"type": "text", "text": CANARIES["email"]}]}],
    )  # fmt: skip
    assert [c.message.content for c in response.choices] == ["Mon courriel : " + CANARIES["email"]] * 2
    assert_no_canary(upstream)


def test_unknown_fields_and_response_format_pass_through(client: openai.OpenAI, upstream) -> None:
    client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "Bonjour"}], temperature=0.2,
        response_format={"type": "json_object"}, extra_body={"custom_option": {"depth": 3}}, user=CANARIES["email"],
    )  # fmt: skip
    sent = upstream.requests[0].json()
    assert sent["custom_option"] == {"depth": 3}
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["temperature"] == 0.2
    assert sent["user"] == "{{EMAIL_1}}"


def test_a_named_scope_keeps_tokens_across_requests_and_the_mapping_needs_its_scope(
    mapping_client: openai.OpenAI, client: openai.OpenAI, upstream
) -> None:
    scope = {"X-Veil-Scope": "conversation-test-scope-1"}
    first = mapping_client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": f"Je suis {CANARIES['email']}"}], extra_headers=scope
    )
    second = mapping_client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": f"Autre : jean@exemple.ca, et moi {CANARIES['email']}"}],
        extra_headers=scope,
    )
    sent = [r.json()["messages"][0]["content"] for r in upstream.requests]
    assert sent == ["Je suis {{EMAIL_1}}", "Autre : {{EMAIL_2}}, et moi {{EMAIL_1}}"]
    assert veil_block(first)["mapping"] == {"{{EMAIL_1}}": CANARIES["email"]}
    assert veil_block(second)["scope"] == "conversation-test-scope-1"
    assert veil_block(second)["mapping"] == {"{{EMAIL_2}}": "jean@exemple.ca", "{{EMAIL_1}}": CANARIES["email"]}
    # The body extension does the same as the header.
    third = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "jean@exemple.ca"}],
        extra_body={"veil_scope": "conversation-test-scope-1"},
    )  # fmt: skip
    assert upstream.requests[-1].json()["messages"][0]["content"] == "{{EMAIL_2}}"
    assert third.choices[0].message.content == "jean@exemple.ca"


def test_without_a_scope_each_request_gets_a_fresh_one(client: openai.OpenAI, upstream) -> None:
    for email in ("a@exemple.ca", "b@exemple.ca"):
        response = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": email}])
        assert veil_block(response)["scope"] is None
    assert [r.json()["messages"][0]["content"] for r in upstream.requests] == ["{{EMAIL_1}}", "{{EMAIL_1}}"]


def test_anonymization_can_be_turned_off_per_request_by_header_or_body(client: openai.OpenAI, upstream) -> None:
    off = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "jean@exemple.ca"}],
        extra_headers={"X-Anonymize": "false"},
    )  # fmt: skip
    assert veil_block(off) == {"anonymized": False, "pii_count": 0, "pii_types": []}
    assert upstream.requests[-1].json()["messages"][0]["content"] == "jean@exemple.ca"
    # The body wins over the header.
    on = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "jean@exemple.ca"}],
        extra_headers={"X-Anonymize": "false"}, extra_body={"anonymize": True},
    )  # fmt: skip
    assert veil_block(on)["anonymized"] is True
    assert upstream.requests[-1].json()["messages"][0]["content"] == "{{EMAIL_1}}"


def test_a_key_that_may_not_opt_out_is_refused_and_nothing_is_sent(base_url: str, upstream) -> None:
    with openai.OpenAI(base_url=base_url, api_key="sk-veil-forced", max_retries=0) as sdk:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            sdk.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": CANARY_TEXT}], extra_body={"anonymize": False}
            )
        assert refused.value.code == "anonymization_required"
        allowed = sdk.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": CANARY_TEXT}])
    assert allowed.choices[0].message.content == CANARY_TEXT
    assert_no_canary(upstream)


def test_permissive_mode_is_chosen_per_request(client: openai.OpenAI, upstream) -> None:
    # A bare 9-digit number with no context: strict mode reports it, permissive mode does not.
    text = "Référence 046454286 pour votre dossier."
    strict = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": text}])
    permissive = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": text}], extra_body={"anonymize_mode": "permissive"}
    )
    assert strict.choices[0].message.content == permissive.choices[0].message.content == text
    assert veil_block(strict)["pii_count"] >= veil_block(permissive)["pii_count"]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": text}], extra_body={"anonymize_mode": "loose"}
        )


def test_mangled_tokens_are_restored_and_invented_ones_reported_in_the_drift_block(
    client: openai.OpenAI, upstream: RecordingUpstream
) -> None:
    text = f"Écrivez à {CANARIES['email']}."
    unary = client.chat.completions.create(model="mangle", messages=[{"role": "user", "content": text}])
    assert unary.choices[0].message.content == f"{text} Voir aussi {{{{PHONE_9}}}}."
    assert veil_block(unary)["drift"] == {"dropped": [], "altered": ["{{EMAIL_1}}"], "invented": ["{{PHONE_9}}"]}
    chunks = list(client.chat.completions.create(model="mangle", messages=[{"role": "user", "content": text}],
                                                 stream=True))  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == unary.choices[0].message.content
    assert veil_block(chunks[-1])["drift"] == veil_block(unary)["drift"]
    assert_no_canary(upstream)


def test_a_token_held_back_at_the_end_of_a_stream_is_flushed_into_each_finishing_choice(
    client: openai.OpenAI, upstream: RecordingUpstream
) -> None:
    # Ends with "{": it could start a token, so the restorer holds it until the choice finishes.
    text = f"Écrivez à {CANARIES['email']} {{"
    chunks = list(client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": text}],
                                                 n=2, stream=True))  # fmt: skip
    by_choice: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            by_choice[choice.index] = by_choice.get(choice.index, "") + (choice.delta.content or "")
    assert by_choice == {0: text, 1: text}
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert len(finishing) == 2 and all(c.choices[0].delta.content == "{" for c in finishing)
    assert_no_canary(upstream)
