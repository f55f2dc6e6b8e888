"""Deterministic local stand-ins for the *upstream models* of a pipeline — never for veil.

`RecordingChatGenerator` is a chat model: it records every text it is sent (message texts,
tool-call arguments, tool results), answers by a fixed script, and streams its answer in
pieces of `chunk_size` characters, so that tokens are cut across chunks. `HashingTextEmbedder`
and `HashingDocumentEmbedder` are embedding models: bags of hashed words, recording what they
embed. Each one serializes, so pipelines holding them round-trip through YAML.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.dataclasses import (
    ChatMessage,
    ComponentInfo,
    StreamingChunk,
    TextContent,
    ToolCall,
    ToolCallDelta,
    ToolCallResult,
)

TOKEN = re.compile(r"\{\{[A-Z_]+_[0-9]+\}\}")


def message_texts(messages: list[ChatMessage]) -> list[str]:
    """Everything of a conversation a model reads, as text."""
    texts: list[str] = []
    for message in messages:
        for part in message._content:
            if isinstance(part, TextContent):
                texts.append(part.text)
            elif isinstance(part, ToolCall):
                texts.append(json.dumps(part.arguments, ensure_ascii=False))
            elif isinstance(part, ToolCallResult):
                texts.append(part.result if isinstance(part.result, str) else repr(part.result))
                texts.append(json.dumps(part.origin.arguments, ensure_ascii=False))
            else:
                texts.append(repr(part))
    return texts


@component
class RecordingChatGenerator:
    """A scripted chat model that records what it is sent.

    script "echo": answers `Reçu : <last text>`. script "tool": if the last message is not a tool
    result, calls `tool_name` with the tokens it was given (`{"recipients": [...], "note": "..."}`,
    the way a model copies values into arguments); after a tool result, answers `Fait : <result>`.
    """

    def __init__(self, script: str = "echo", chunk_size: int = 3, tool_name: str = "send_email") -> None:
        self.script = script
        self.chunk_size = chunk_size
        self.tool_name = tool_name
        self.seen: list[str] = []

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, script=self.script, chunk_size=self.chunk_size, tool_name=self.tool_name)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecordingChatGenerator:
        return default_from_dict(cls, data)

    def _reply(self, messages: list[ChatMessage]) -> ChatMessage:
        texts = message_texts(messages)
        self.seen.extend(texts)
        last = messages[-1]
        if self.script == "tool":
            if last.tool_call_result is not None:
                return ChatMessage.from_assistant(f"Fait : {last.tool_call_result.result}")
            tokens = list(dict.fromkeys(TOKEN.findall(" ".join(texts))))
            note = f"Écrire à {tokens[0]}" if tokens else "rien"
            call = ToolCall(tool_name=self.tool_name, arguments={"recipients": tokens, "note": note}, id="call_1")
            return ChatMessage.from_assistant(tool_calls=[call])
        return ChatMessage.from_assistant(f"Reçu : {last.text}")

    def _chunks(self, reply: ChatMessage) -> list[StreamingChunk]:
        info = ComponentInfo.from_component(self)
        size = self.chunk_size
        chunks = []
        text = reply.text or ""
        for start in range(0, len(text), size):
            chunks.append(StreamingChunk(content=text[start : start + size], component_info=info, index=0))
        for number, call in enumerate(reply.tool_calls, start=1):
            arguments = json.dumps(call.arguments, ensure_ascii=False)
            first = ToolCallDelta(index=number - 1, tool_name=call.tool_name, id=call.id)
            chunks.append(StreamingChunk(content="", component_info=info, index=number, start=True, tool_calls=[first]))
            for start in range(0, len(arguments), size):
                delta = ToolCallDelta(index=number - 1, arguments=arguments[start : start + size])
                chunks.append(StreamingChunk(content="", component_info=info, index=number, tool_calls=[delta]))
        reason = "tool_calls" if reply.tool_calls else "stop"
        chunks.append(StreamingChunk(content="", component_info=info, finish_reason=reason))
        return chunks

    @component.output_types(replies=list[ChatMessage])
    def run(
        self,
        messages: list[ChatMessage],
        streaming_callback: Any = None,
        generation_kwargs: dict[str, Any] | None = None,
        *,
        tools: Any = None,
        tools_strict: bool | None = None,
    ) -> dict[str, list[ChatMessage]]:
        reply = self._reply(messages)
        if streaming_callback is not None:
            for chunk in self._chunks(reply):
                streaming_callback(chunk)
        return {"replies": [reply]}

    @component.output_types(replies=list[ChatMessage])
    async def run_async(
        self,
        messages: list[ChatMessage],
        streaming_callback: Any = None,
        generation_kwargs: dict[str, Any] | None = None,
        *,
        tools: Any = None,
        tools_strict: bool | None = None,
    ) -> dict[str, list[ChatMessage]]:
        reply = self._reply(messages)
        if streaming_callback is not None:
            for chunk in self._chunks(reply):
                await streaming_callback(chunk)
        return {"replies": [reply]}


def hashed_embedding(text: str, dimensions: int = 64) -> list[float]:
    vector = [0.0] * dimensions
    for word in re.findall(r"\w+|\{\{[A-Z_0-9]+\}\}", text.casefold()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % dimensions] += 1.0
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]


@component
class HashingTextEmbedder:
    """An embedding model for queries: a bag of hashed words; records what it embeds."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict[str, list[float]]:
        self.seen.append(text)
        return {"embedding": hashed_embedding(text)}


@component
class HashingDocumentEmbedder:
    """An embedding model for documents: a bag of hashed words of the content; records what it embeds."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        out = []
        for document in documents:
            self.seen.append(document.content or "")
            self.seen.extend(str(value) for value in document.meta.values())
            out.append(Document(id=document.id, content=document.content, meta=document.meta,
                                embedding=hashed_embedding(document.content or "")))  # fmt: skip
        return {"documents": out}
