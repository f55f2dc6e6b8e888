"""The official langchain-tests standard suites, run on the veil wrappers.

The wrapped ("upstream") models are deterministic local fakes; veil itself is real. The
integration suites' tool-calling and structured-output tests need a model that understands a
request ("What is the value of magic_function(3)?"); an echoing fake cannot, so they are off here
(`has_tool_calling`, `has_structured_output`) and covered by test_langchain_chat_model.py with
scripted answers instead.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_fakes import RecordingChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests, EmbeddingsIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests, EmbeddingsUnitTests
from veil_langchain import VeilChatModel, VeilEmbeddings

from veil import Engine, Veil
from veil.detect import BUILTIN_RULES, RuleDetector

SHARED_VEIL = Veil(engine=Engine(detectors=[RuleDetector(BUILTIN_RULES)]))


class TestVeilChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[VeilChatModel]:
        return VeilChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": RecordingChatModel(), "veil": SHARED_VEIL, "scope": "standard-unit"}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # The wrapper has no connection of its own: timeout, max_retries and api_key belong to the
        # wrapped model, and the wrapper refuses unknown fields rather than ignore them.
        return {"temperature": 0, "max_tokens": 100, "stop": []}


class TestVeilChatModelIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[VeilChatModel]:
        return VeilChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": RecordingChatModel(), "veil": SHARED_VEIL}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        return {"temperature": 0, "max_tokens": 100, "stop": []}

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def model_override_value(self) -> str | None:
        return "recording-fake-2"


class TestVeilEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[VeilEmbeddings]:
        return VeilEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"embeddings": DeterministicFakeEmbedding(size=16), "veil": SHARED_VEIL, "scope": "standard-unit"}


class TestVeilEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[VeilEmbeddings]:
        return VeilEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"embeddings": DeterministicFakeEmbedding(size=16), "veil": SHARED_VEIL, "scope": "standard-int"}


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:langchain_tests.*")
