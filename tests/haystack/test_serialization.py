"""Every component survives Pipeline.dumps()/loads() with its settings; secrets stay names of env vars."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from haystack import Pipeline
from haystack.components.generators.chat import MockChatGenerator
from haystack.core.errors import DeserializationError
from haystack.dataclasses import ChatMessage
from haystack.utils import Secret
from haystack_fakes import RecordingChatGenerator
from haystack_helpers import EMAIL, RULES_ONLY, SIN, assert_no_canary
from veil_haystack import (
    VeilChatGenerator,
    VeilConfig,
    VeilDocumentAnonymizer,
    VeilDocumentFilter,
    VeilRestorer,
    VeilTextAnonymizer,
)

import veil

ALLOWED = ["veil_haystack", "haystack_fakes"]
KEK = base64.b64encode(b"k" * 32).decode()


def chat_pipeline(config: VeilConfig) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component("anonymizer", VeilTextAnonymizer(config=config, forward_media=True))
    pipeline.add_component("llm", RecordingChatGenerator(chunk_size=2))
    pipeline.add_component("restorer", VeilRestorer(config=config, lenient=True))
    pipeline.connect("anonymizer.messages", "llm.messages")
    pipeline.connect("llm.replies", "restorer.messages")
    pipeline.connect("anonymizer.scope", "restorer.scope")
    return pipeline


def test_a_pipeline_round_trips_through_yaml_with_every_setting(tmp_path: Path) -> None:
    config = VeilConfig(
        path=str(tmp_path / "vault"), tenant="acme", mode="permissive",
        policy={"exclude": ["DATE"], "allow": ["support@acme.ca"], **RULES_ONLY}, style="token", ttl=3600.0,
    )  # fmt: skip
    pipeline = chat_pipeline(config)
    dumped = pipeline.dumps()
    loaded = Pipeline.loads(dumped, allowed_modules=ALLOWED)
    assert loaded.dumps() == dumped
    anonymizer = loaded.get_component("anonymizer")
    restorer = loaded.get_component("restorer")
    assert isinstance(anonymizer, VeilTextAnonymizer) and isinstance(restorer, VeilRestorer)
    assert anonymizer.config == config and anonymizer.forward_media is True
    assert restorer.lenient is True
    assert anonymizer.config.policy == {"exclude": ["DATE"], "allow": ["support@acme.ca"], **RULES_ONLY}
    # The loaded pipeline works, and shares this process's Veil with the original.
    result = loaded.run({"anonymizer": {"messages": [ChatMessage.from_user(f"à {EMAIL}, copie support@acme.ca")]}})
    assert result["restorer"]["messages"][0].text == f"Reçu : à {EMAIL}, copie support@acme.ca"
    assert anonymizer._veil is config.veil()
    assert_no_canary(loaded.get_component("llm").seen)


def test_secrets_are_written_as_environment_variable_names_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_VEIL_KEK", KEK)
    config = VeilConfig(kek=Secret.from_env_var("TEST_VEIL_KEK"), tenant="secrets", policy=dict(RULES_ONLY))
    dumped = chat_pipeline(config).dumps()
    assert KEK not in dumped
    data = yaml.safe_load(dumped)
    kek = data["components"]["anonymizer"]["init_parameters"]["config"]["init_parameters"]["kek"]
    assert kek == {"type": "env_var", "env_vars": ["TEST_VEIL_KEK"], "strict": True}
    loaded = Pipeline.loads(dumped, allowed_modules=ALLOWED)
    assert loaded.get_component("anonymizer").config == config
    assert loaded.run({"anonymizer": {"messages": [ChatMessage.from_user(SIN)]}})["restorer"]["messages"][0].text


def test_a_token_secret_cannot_be_serialized() -> None:
    config = VeilConfig(kek=Secret.from_token(KEK))
    with pytest.raises(ValueError, match="token"):
        chat_pipeline(config).dumps()


def test_chat_generator_round_trips_with_the_generator_it_wraps(config: VeilConfig) -> None:
    pipeline = Pipeline()
    wrapped = MockChatGenerator(responses="Reçu.", model="mock-7")
    llm = VeilChatGenerator(generator=wrapped, config=config, scope="conv-1", lenient=True, forward_media=True)
    pipeline.add_component("llm", llm)
    loaded = Pipeline.loads(pipeline.dumps(), allowed_modules=ALLOWED)
    restored = loaded.get_component("llm")
    assert isinstance(restored, VeilChatGenerator)
    assert isinstance(restored.generator, MockChatGenerator) and restored.generator.model == "mock-7"
    assert (restored.config, restored.scope, restored.lenient, restored.forward_media) == (config, "conv-1", True, True)
    assert loaded.run({"llm": {"messages": [ChatMessage.from_user(EMAIL)]}})["llm"]["replies"][0].text == "Reçu."


def test_chat_generator_round_trips_its_streaming_callback(config: VeilConfig) -> None:
    llm = VeilChatGenerator(generator=MockChatGenerator(), config=config, streaming_callback=print)
    data = llm.to_dict()
    assert data["init_parameters"]["streaming_callback"] == "builtins.print"
    assert VeilChatGenerator.from_dict(data).streaming_callback is print
    assert data == llm.to_dict()  # from_dict left its input alone


def test_document_components_round_trip(config: VeilConfig) -> None:
    pipeline = Pipeline()
    pipeline.add_component("filter", VeilDocumentFilter(config=config, max_pii=2, action="redact", meta_fields=["a"]))
    pipeline.add_component("anonymizer", VeilDocumentAnonymizer(config=config, scope="kb", meta_fields=["author"]))
    pipeline.connect("filter.documents", "anonymizer.documents")
    loaded = Pipeline.loads(pipeline.dumps(), allowed_modules=ALLOWED)
    document_filter = loaded.get_component("filter")
    anonymizer = loaded.get_component("anonymizer")
    assert (document_filter.max_pii, document_filter.action, document_filter.meta_fields) == (2, "redact", ["a"])
    assert (anonymizer.scope, anonymizer.meta_fields, anonymizer.config) == ("kb", ["author"], config)


def test_loading_without_allowing_the_module_is_refused_by_haystack(config: VeilConfig) -> None:
    with pytest.raises(DeserializationError, match="veil_haystack"):
        Pipeline.loads(chat_pipeline(config).dumps())


def test_a_bad_setting_fails_when_the_component_is_built() -> None:
    with pytest.raises(veil.ConfigError, match="NOT_AN_ENTITY"):
        VeilConfig(policy={"exclude": ["NOT_AN_ENTITY"]})
    with pytest.raises(veil.ConfigError, match="kek"):
        VeilConfig(vault_url=Secret.from_env_var("VEIL_VAULT_URL"))
    with pytest.raises(veil.ConfigError, match="style"):
        VeilConfig(style="emoji")


def test_a_vault_url_of_an_unknown_scheme_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_VEIL_URL", "mysql://user:hunter2@db/veil")
    monkeypatch.setenv("TEST_VEIL_KEK", KEK)
    config = VeilConfig(vault_url=Secret.from_env_var("TEST_VEIL_URL"), kek=Secret.from_env_var("TEST_VEIL_KEK"))
    with pytest.raises(veil.ConfigError) as raised:
        config.veil()
    assert "hunter2" not in str(raised.value)


def test_a_pipeline_loaded_in_another_process_restores_tokens_of_this_one(tmp_path: Path) -> None:
    """The embedded vault persists: anonymize here, load the YAML elsewhere, restore there."""
    config = VeilConfig(path=str(tmp_path / "vault"), tenant="persist", policy=dict(RULES_ONLY))
    pipeline = chat_pipeline(config)
    scope = "conversation-99"
    anonymized = pipeline.get_component("anonymizer").run(text=f"NAS {SIN}, {EMAIL}", scope=scope)["text"]
    assert anonymized == "NAS {{CA_SIN_1}}, {{EMAIL_1}}"
    (tmp_path / "pipeline.yaml").write_text(pipeline.dumps(), encoding="utf-8")
    script = textwrap.dedent(f"""
        from haystack import Pipeline
        with open({str(tmp_path / "pipeline.yaml")!r}, encoding="utf-8") as handle:
            pipeline = Pipeline.load(handle, allowed_modules={ALLOWED!r})
        restorer = pipeline.get_component("restorer")
        print(restorer.run(text={anonymized!r}, scope={scope!r})["text"])
    """)
    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": str(here), "HAYSTACK_TELEMETRY_ENABLED": "False"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"NAS {SIN}, {EMAIL}"
