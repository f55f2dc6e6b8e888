"""A deterministic local stand-in for the *upstream* model (the provider veil protects values from).

`RecordingChatModel` records every message list and keyword it receives, so a test can assert that
no value ever reached it. It answers from a script of `AIMessage`s when given one (tool calls,
structured output), and otherwise echoes the last human or tool message — tokens included, the way
a model repeats what it was told. It streams its answer in chunks of `chunk_size` characters (text
and tool-call arguments alike), so tokens are cut between chunks, and reports usage like a provider.
veil itself is never faked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr


class RecordingChatModel(BaseChatModel):
    model_name: str = "recording-fake-1"
    script: list[AIMessage] = Field(default_factory=list)
    """Answers given in order; when it runs out, the model echoes."""
    respond: Callable[[list[BaseMessage]], AIMessage] | None = None
    """Answers computed from the messages (an agent's policy), when there is no script left."""
    chunk_size: int = 3
    stream_blocks: bool = False
    """Stream text as content blocks with an index (Anthropic's way) instead of plain strings."""
    received: list[list[BaseMessage]] = Field(default_factory=list)
    received_kwargs: list[dict[str, Any]] = Field(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "recording-fake"

    def seen_text(self) -> str:
        """Everything the model received, as one string (content, tool calls, kwargs)."""
        parts = []
        for messages in self.received:
            for message in messages:
                parts.append(json.dumps(message.model_dump(), ensure_ascii=False, default=str))
        parts.extend(json.dumps(kwargs, ensure_ascii=False, default=str) for kwargs in self.received_kwargs)
        return "\n".join(parts)

    def _answer(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        with self._lock:
            self.received.append(list(messages))
            self.received_kwargs.append(dict(kwargs))
            scripted = self.script.pop(0) if self.script else None
        if scripted is not None:
            answer = scripted
        elif self.respond is not None:
            answer = self.respond(list(messages))
        else:
            last = next((m for m in reversed(messages) if isinstance(m, HumanMessage | ToolMessage)), messages[-1])
            answer = AIMessage(content=f"You said: {last.text}")
        words = sum(len(m.text.split()) for m in messages)
        return answer.model_copy(
            update={
                "response_metadata": {"model_name": kwargs.get("model", self.model_name), "finish_reason": "stop"},
                "usage_metadata": {"input_tokens": words, "output_tokens": len(answer.text.split()),
                                   "total_tokens": words + len(answer.text.split())},
            }
        )  # fmt: skip

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages, kwargs))])

    def _chunks(self, answer: AIMessage) -> Iterator[AIMessageChunk]:
        size = self.chunk_size
        text = answer.text
        for start in range(0, len(text), size):
            piece = text[start : start + size]
            if self.stream_blocks:
                yield AIMessageChunk(content=[{"type": "text", "text": piece, "index": 0}], id=answer.id)
            else:
                yield AIMessageChunk(content=piece, id=answer.id)
        for index, call in enumerate(answer.tool_calls):
            args = json.dumps(call["args"], ensure_ascii=False)
            yield AIMessageChunk(
                content="", tool_call_chunks=[{"name": call["name"], "args": "", "id": call["id"], "index": index}]
            )
            for start in range(0, len(args), size):
                piece = args[start : start + size]
                yield AIMessageChunk(content="", tool_call_chunks=[{"name": None, "args": piece, "id": None,
                                                                    "index": index}])  # fmt: skip
        yield AIMessageChunk(
            content="",
            usage_metadata=answer.usage_metadata,
            response_metadata=answer.response_metadata,
            chunk_position="last",
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(self._answer(messages, kwargs)):
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(self._answer(messages, kwargs)):
            yield ChatGenerationChunk(message=chunk)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)


class RecordingEmbeddings(Embeddings):
    """A deterministic embedding model that records the texts it is given (bag of character trigrams)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.received: list[str] = []
        self._lock = threading.Lock()

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.size
        for start in range(max(1, len(text) - 2)):
            vector[hash_trigram(text[start : start + 3]) % self.size] += 1.0
        norm = sum(v * v for v in vector) ** 0.5 or 1.0
        return [v / norm for v in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            self.received.extend(texts)
        return [self._vector(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        with self._lock:
            self.received.append(text)
        return self._vector(text)


def hash_trigram(trigram: str) -> int:
    """A stable hash (Python's own is salted per process)."""
    value = 0
    for ch in trigram.lower():
        value = (value * 131 + ord(ch)) % 1_000_003
    return value
