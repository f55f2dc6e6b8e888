"""VeilTextAnonymizer and VeilRestorer: texts and ChatMessages, scopes through a pipeline, failing closed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from haystack import Pipeline
from haystack.dataclasses import ChatMessage, ImageContent, ReasoningContent, ToolCall
from haystack_fakes import RecordingChatGenerator, message_texts
from haystack_helpers import CARD, EMAIL, PHONE, RULES_ONLY, SIN, assert_no_canary
from veil_haystack import VeilConfig, VeilRestorer, VeilTextAnonymizer

import veil

TEXT = f"Écrivez à {EMAIL}, NAS {SIN}, carte {CARD}, tél. {PHONE}."


def test_anonymizer_replaces_every_value_of_a_text_and_restorer_puts_them_back(config: VeilConfig) -> None:
    out = VeilTextAnonymizer(config=config).run(text=TEXT)
    assert_no_canary(out["text"])
    assert "{{EMAIL_1}}" in out["text"] and "{{CA_SIN_1}}" in out["text"]
    assert out["pii_count"] == 4
    assert VeilRestorer(config=config).run(text=out["text"], scope=out["scope"]) == {"text": TEXT}


def test_each_run_without_a_scope_gets_a_fresh_one(config: VeilConfig) -> None:
    anonymizer = VeilTextAnonymizer(config=config)
    first, second = anonymizer.run(text=TEXT), anonymizer.run(text=TEXT)
    assert first["scope"] != second["scope"]
    with pytest.raises(veil.TokenNotFound):
        VeilRestorer(config=config).run(text="{{EMAIL_1}}", scope="never-used")


def test_a_scope_gives_a_value_the_same_token_in_every_run(config: VeilConfig) -> None:
    anonymizer = VeilTextAnonymizer(config=config, scope="conversation-42")
    first = anonymizer.run(text=f"courriel {EMAIL}")["text"]
    second = anonymizer.run(text=f"Re: {EMAIL} et {SIN}")["text"]
    assert first == "courriel {{EMAIL_1}}"
    assert second == "Re: {{EMAIL_1}} et {{CA_SIN_1}}"
    assert anonymizer.run(text="x", scope="other")["scope"] == "other"  # the input overrides the component


def test_messages_are_anonymized_in_text_tool_calls_tool_results_and_reasoning(config: VeilConfig) -> None:
    call = ToolCall(tool_name="send_email", arguments={"to": EMAIL, "card": {"number": CARD}, "ids": [SIN]}, id="c1")
    messages = [
        ChatMessage.from_system("Assistant du service client."),
        ChatMessage.from_user(f"Mon numéro : {PHONE}"),
        ChatMessage.from_assistant(
            text="J'envoie.", tool_calls=[call], reasoning=ReasoningContent(f"écrire à {EMAIL}")
        ),
        ChatMessage.from_tool(f"envoyé à {EMAIL}", origin=call),
    ]
    out = VeilTextAnonymizer(config=config).run(messages=messages)
    anonymized = out["messages"]
    assert_no_canary(message_texts(anonymized))
    assert anonymized[2].tool_calls[0].arguments == {
        "to": "{{EMAIL_1}}", "card": {"number": "{{CREDIT_CARD_1}}"}, "ids": ["{{CA_SIN_1}}"],
    }  # fmt: skip
    assert anonymized[2].tool_calls[0].tool_name == "send_email" and anonymized[2].tool_calls[0].id == "c1"
    assert anonymized[3].tool_call_result.result == "envoyé à {{EMAIL_1}}"
    assert [m.role for m in anonymized] == [m.role for m in messages]
    assert out["pii_count"] == 9  # the tool result repeats the call's three arguments
    restored = VeilRestorer(config=config).run(messages=anonymized, scope=out["scope"])["messages"]
    assert restored == messages


def test_text_and_messages_in_one_run_share_the_scope(config: VeilConfig) -> None:
    out = VeilTextAnonymizer(config=config).run(text=EMAIL, messages=[ChatMessage.from_user(f"à {EMAIL}")])
    assert out["text"] == "{{EMAIL_1}}"
    assert out["messages"][0].text == "à {{EMAIL_1}}"


def test_restorer_needs_a_scope(config: VeilConfig) -> None:
    with pytest.raises(veil.ConfigError, match="needs a scope"):
        VeilRestorer(config=config).run(text="{{EMAIL_1}}")


def test_restorer_raises_on_an_unknown_token_unless_lenient(config: VeilConfig) -> None:
    scope = VeilTextAnonymizer(config=config).run(text=EMAIL)["scope"]
    with pytest.raises(veil.TokenNotFound):
        VeilRestorer(config=config).run(text="{{EMAIL_1}} {{PERSON_9}}", scope=scope)
    lenient = VeilRestorer(config=config, lenient=True).run(text="{{EMAIL_1}} {{PERSON_9}}", scope=scope)
    assert lenient["text"] == f"{EMAIL} {{{{PERSON_9}}}}"


def test_images_are_refused_unless_forwarded_knowingly(config: VeilConfig) -> None:
    image = ImageContent(base64_image="iVBORw0KGgo=", mime_type="image/png", validation=False)
    message = ChatMessage.from_user(content_parts=[f"voir {EMAIL}", image])
    with pytest.raises(veil.InputError, match="ImageContent"):
        VeilTextAnonymizer(config=config).run(messages=[message])
    out = VeilTextAnonymizer(config=config, forward_media=True).run(messages=[message])
    assert out["messages"][0].texts == ["voir {{EMAIL_1}}"]
    assert out["messages"][0].images == [image]


def test_anonymizer_fails_closed_when_its_key_is_unreadable(tmp_path: Path) -> None:
    """A key file readable by others is refused: the run raises and the model is never called."""
    VeilConfig(path=str(tmp_path / "seed")).veil()  # a valid key file to copy
    home = tmp_path / "exposed"
    home.mkdir()
    (home / "keys.json").write_text((tmp_path / "seed" / "keys.json").read_text())
    os.chmod(home / "keys.json", stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
    model = RecordingChatGenerator()
    pipeline = Pipeline()
    pipeline.add_component("anonymizer", VeilTextAnonymizer(config=VeilConfig(path=str(home), policy=dict(RULES_ONLY))))
    pipeline.add_component("llm", model)
    pipeline.connect("anonymizer.messages", "llm.messages")
    with pytest.raises(Exception) as raised:  # noqa: PT011 - Haystack wraps the cause; checked below
        pipeline.run({"anonymizer": {"messages": [ChatMessage.from_user(TEXT)]}})
    causes = [raised.value, raised.value.__cause__, raised.value.__context__]
    assert any(isinstance(cause, veil.KeyUnavailable) for cause in causes), causes
    assert model.seen == []
    assert EMAIL not in str(raised.value)


def test_anonymizer_and_restorer_carry_the_scope_through_a_pipeline(config: VeilConfig) -> None:
    model = RecordingChatGenerator()
    pipeline = Pipeline()
    pipeline.add_component("anonymizer", VeilTextAnonymizer(config=config))
    pipeline.add_component("llm", model)
    pipeline.add_component("restorer", VeilRestorer(config=config))
    pipeline.connect("anonymizer.messages", "llm.messages")
    pipeline.connect("llm.replies", "restorer.messages")
    pipeline.connect("anonymizer.scope", "restorer.scope")
    result = pipeline.run({"anonymizer": {"messages": [ChatMessage.from_user(TEXT)]}})
    assert_no_canary(model.seen)
    assert result["restorer"]["messages"][0].text == f"Reçu : {TEXT}"


def test_anonymizer_and_restorer_run_in_pipeline_run_async(config: VeilConfig) -> None:
    import asyncio

    model = RecordingChatGenerator()
    pipeline = Pipeline()
    pipeline.add_component("anonymizer", VeilTextAnonymizer(config=config))
    pipeline.add_component("llm", model)
    pipeline.add_component("restorer", VeilRestorer(config=config))
    pipeline.connect("anonymizer.messages", "llm.messages")
    pipeline.connect("llm.replies", "restorer.messages")
    pipeline.connect("anonymizer.scope", "restorer.scope")
    result = asyncio.run(pipeline.run_async({"anonymizer": {"messages": [ChatMessage.from_user(TEXT)]}}))
    assert result["restorer"]["messages"][0].text == f"Reçu : {TEXT}"
    assert_no_canary(model.seen)
