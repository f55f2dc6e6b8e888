"""Deterministic local fakes of the *upstream* model (an LLM and an embedding model) that record
everything they receive, so that tests can assert that no personal value ever reaches them.

These fake the provider only; veil and the veil_llamaindex wrappers under test are real.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from typing import Any

import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.node_parser.text.utils import split_by_regex

from veil import Engine, Veil
from veil.detect import BUILTIN_RULES, RuleDetector

CANARIES = {
    "email": "marie.tremblay@exemple.qc.ca",
    "phone": "+1 514 872 3456",
    "sin": "130 692 544",
    "card": "4111 1111 1111 1111",
}
"""Values the rules engine detects; none may ever reach a fake upstream model."""

TOKEN = re.compile(r"\{\{[A-Z][A-Z0-9_]*_[1-9][0-9]*\}\}")


def leaked(seen: Sequence[str]) -> list[str]:
    """The canaries (and their digits without spaces) found in what an upstream fake received."""
    joined = "\n".join(seen)
    found = [name for name, value in CANARIES.items() if value in joined]
    compact = re.sub(r"\s", "", joined)
    found += [
        f"{name}(compact)" for name, value in CANARIES.items() if name != "email" and value.replace(" ", "") in compact
    ]
    return found


def echo(messages: Sequence[ChatMessage]) -> str:
    """Default answer: repeat the last user message (tokens included), as a model quoting it would."""
    last = next((m for m in reversed(messages) if m.role == MessageRole.USER), None)
    return f"You said: {last.content if last is not None else ''}"


class RecordingLLM(FunctionCallingLLM):
    """A function-calling chat model that records its inputs and streams its answer in small chunks.

    With tools: the first turn calls `tools[0]` with `{"recipient": <first token of the last user
    message>}` (as a model fills arguments from its prompt); once a tool result is in the
    conversation it answers `Done: <tool result>`.
    """

    seen: list[str] = Field(default_factory=list, exclude=True)
    chunk_size: int = 3
    cuts: list[int] | None = Field(default=None, description="Cut the streamed answer at these offsets instead.")
    answer: Callable[[Sequence[ChatMessage]], str] = Field(default=echo, exclude=True)
    function_calling: bool = True

    @classmethod
    def class_name(cls) -> str:
        return "RecordingLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=4321, num_output=123, is_chat_model=True,
            is_function_calling_model=self.function_calling, model_name="recording",
        )  # fmt: skip

    def _record(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> None:
        self.seen.extend(message.model_dump_json() for message in messages)
        extra = {key: value for key, value in kwargs.items() if key != "tools"}
        self.seen.append(json.dumps(extra, default=repr))

    def _reply(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatMessage:
        tools = kwargs.get("tools")
        if tools and not any(m.role == MessageRole.TOOL for m in messages):
            last = next(m for m in reversed(messages) if m.role == MessageRole.USER)
            match = TOKEN.search(last.content or "")
            arguments = {"recipient": match.group(0) if match else "nobody"}
            return ChatMessage(
                role=MessageRole.ASSISTANT,
                blocks=[ToolCallBlock(tool_call_id="call-1", tool_name=tools[0].metadata.name, tool_kwargs=arguments)],
            )
        if tools:
            result = next(m for m in reversed(messages) if m.role == MessageRole.TOOL)
            return ChatMessage(role=MessageRole.ASSISTANT, content=f"Done: {result.content}")
        return ChatMessage(role=MessageRole.ASSISTANT, content=self.answer(messages))

    def _chunks(self, text: str) -> list[str]:
        if self.cuts is not None:
            bounds = [0, *sorted({c for c in self.cuts if 0 < c < len(text)}), len(text)]
            return [text[a:b] for a, b in itertools.pairwise(bounds)] or [""]
        return [text[i : i + self.chunk_size] for i in range(0, len(text), self.chunk_size)] or [""]

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self._record(messages, kwargs)
        message = self._reply(messages, kwargs)
        return ChatResponse(message=message, raw={"content": message.content})

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self.chat(messages, **kwargs)

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        self._record(messages, kwargs)
        message = self._reply(messages, kwargs)

        def generate() -> Generator[ChatResponse, None, None]:
            if message.content is None:
                yield ChatResponse(message=message, delta="")
                return
            text = ""
            for chunk in self._chunks(message.content):
                text += chunk
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=chunk)

        return generate()

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        responses = list(self.stream_chat(messages, **kwargs))

        async def generate() -> AsyncGenerator[ChatResponse, None]:
            for response in responses:
                yield response

        return generate()

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.seen.append(prompt)
        return CompletionResponse(text=f"Echo: {prompt}")

    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self.complete(prompt, formatted=formatted, **kwargs)

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        self.seen.append(prompt)
        text = f"Echo: {prompt}"

        def generate() -> Generator[CompletionResponse, None, None]:
            so_far = ""
            for chunk in self._chunks(text):
                so_far += chunk
                yield CompletionResponse(text=so_far, delta=chunk)

        return generate()

    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        responses = list(self.stream_complete(prompt, formatted=formatted, **kwargs))

        async def generate() -> AsyncGenerator[CompletionResponse, None]:
            for response in responses:
                yield response

        return generate()

    def _prepare_chat_with_tools(  # noqa: PLR0917 - LlamaIndex's signature
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(
                ChatMessage(role=MessageRole.USER, content=user_msg) if isinstance(user_msg, str) else user_msg
            )
        return {"messages": messages, "tools": tools, **kwargs}

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        calls = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
        if not calls and error_on_no_tool_call:
            raise ValueError("expected a tool call")
        return [
            ToolSelection(tool_id=c.tool_call_id or "", tool_name=c.tool_name,
                          tool_kwargs=c.tool_kwargs if isinstance(c.tool_kwargs, dict) else json.loads(c.tool_kwargs))
            for c in calls
        ]  # fmt: skip


def hashed_embedding(text: str, dimensions: int = 64) -> list[float]:
    """A deterministic bag-of-words embedding: equal texts embed equally, shared words bring texts closer."""
    vector = [0.0] * dimensions
    for word in re.findall(r"\{\{[^}]*\}\}|\w+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        vector[digest[0] % dimensions] += 1.0 if digest[1] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class RecordingEmbedding(BaseEmbedding):
    """A deterministic local embedding model that records every text it embeds."""

    seen: list[str] = Field(default_factory=list, exclude=True)
    model_name: str = "recording-embedding"

    @classmethod
    def class_name(cls) -> str:
        return "RecordingEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        self.seen.append(query)
        return hashed_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        self.seen.append(text)
        return hashed_embedding(text)


def splitter(chunk_size: int = 64) -> SentenceSplitter:
    """LlamaIndex's sentence splitter with a regex sentence tokenizer instead of NLTK's punkt: nltk
    >= 3.10 refuses to read its data files when they are hard links, as uv installs them."""
    return SentenceSplitter(
        chunk_size=chunk_size, chunk_overlap=0, chunking_tokenizer_fn=split_by_regex(r"(?s).+?(?:[.!?](?=\s|$)\s*|$)")
    )


def rules_engine() -> Engine:
    """The rules engine alone: deterministic and fast (NER, when installed, is the default's business)."""
    return Engine(detectors=[RuleDetector(BUILTIN_RULES)])


@pytest.fixture
def veil() -> Veil:
    return Veil(engine=rules_engine())


@pytest.fixture
def upstream() -> RecordingLLM:
    return RecordingLLM()


@pytest.fixture
def embedder() -> RecordingEmbedding:
    return RecordingEmbedding()
