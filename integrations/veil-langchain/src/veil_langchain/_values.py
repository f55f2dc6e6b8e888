"""LangChain values through a veil Session: messages, content blocks, tool calls, prompt values, documents.

The core anonymizes and restores strings, OpenAI-format messages and JSON. This module maps
LangChain's own types onto those calls, field by field, so that nothing the model provider would
receive is left unchecked (fail closed): message text and content blocks, reasoning, tool-call
arguments (parsed, partial or invalid), tool results and `additional_kwargs`. Binary blocks
(images, audio, files) cannot be checked for personal data and are refused unless the caller
allows them.

`MessageStreamRestorer` restores a stream of `AIMessageChunk`s: one core streaming restorer per
text block and per tool-call argument stream, so that a token cut between chunks is never shown
half restored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import ToolCallChunk, tool_call_chunk
from langchain_core.prompt_values import ChatPromptValue, PromptValue, StringPromptValue
from pydantic import BaseModel

from veil import ConfigError, Session
from veil.restore import HoldBackStream

BINARY_BLOCK_TYPES = frozenset(
    {"image", "image_url", "file", "audio", "input_audio", "video", "document", "non_standard", "server_tool_result"}
)
"""Content blocks that carry bytes or references, not text: veil cannot look inside them."""

TEXT_FIELDS = {"text": "text", "reasoning": "reasoning", "thinking": "thinking", "text-plain": "text"}
"""Block type → the field holding its text."""

NO_KEYS: frozenset[str] = frozenset()
"""Tool arguments are data all the way down: no key is skipped (an argument may be called `id` or `type`)."""

IDENTIFIER_KEYS = frozenset({"type", "id", "tool_call_id", "role", "index"})
"""Keys of `additional_kwargs` and unknown blocks that name or number things rather than carry text.
(The core's own descriptive keys include `function_call` and `metadata`, which here may carry data.)"""


class BinaryContentRefused(ConfigError):
    """A message carries an image, audio or file block: veil cannot check it for personal data."""


def _arguments_text(session: Session, text: str, *, keep_tokens: bool = False) -> str:
    """Tool-call arguments as a JSON string (possibly partial or invalid): walked as JSON when it parses."""
    value: str = session.anonymize({"arguments": text}, skip_keys=NO_KEYS, keep_tokens=keep_tokens).value["arguments"]
    return value


class Anonymizer:
    """Anonymizes LangChain values within one session."""

    def __init__(self, session: Session, *, allow_binary: bool = False, keep_tokens: bool = False) -> None:
        """`keep_tokens`: tokens of the session's scope already in the input (documents anonymized
        earlier in a collection) stay as they are instead of becoming literals."""
        self.session = session
        self.allow_binary = allow_binary
        self.keep_tokens = keep_tokens

    def text(self, text: str) -> str:
        if not text:
            return text
        value: str = self.session.anonymize(text, keep_tokens=self.keep_tokens).text
        return value

    def json(self, value: Any, skip_keys: frozenset[str] = NO_KEYS) -> Any:
        return self.session.anonymize(value, skip_keys=skip_keys, keep_tokens=self.keep_tokens).value

    def _arguments(self, text: str) -> str:
        return _arguments_text(self.session, text, keep_tokens=self.keep_tokens)

    def block(self, block: Any) -> Any:
        if isinstance(block, str):
            return self.text(block)
        if not isinstance(block, Mapping):
            raise ConfigError(f"cannot anonymize a content block of type {type(block).__name__}")
        kind = block.get("type")
        if kind in TEXT_FIELDS:
            field = TEXT_FIELDS[kind]
            out = dict(block)
            if isinstance(block.get(field), str):
                out[field] = self.text(block[field])
            if "extras" in block:
                out["extras"] = self.json(block["extras"])
            return out
        if kind in ("tool_call", "tool_use", "function_call"):
            out = dict(block)
            for key in ("args", "input", "arguments"):
                if isinstance(block.get(key), Mapping):
                    out[key] = self.json(block[key])
                elif isinstance(block.get(key), str):
                    out[key] = self._arguments(block[key])
            return out
        if kind == "tool_call_chunk":
            args = block.get("args")
            return {**block, "args": self._arguments(args)} if isinstance(args, str) else dict(block)
        if kind in BINARY_BLOCK_TYPES:
            if not self.allow_binary:
                raise BinaryContentRefused(
                    f"a {kind!r} content block cannot be checked for personal data; pass allow_binary=True to "
                    "forward such blocks as they are, or remove them"
                )
            return block
        # Any other block: every string leaf is checked, descriptive keys (type, id …) aside.
        return self.json(dict(block), IDENTIFIER_KEYS)

    def content(self, content: str | list[Any]) -> str | list[Any]:
        if isinstance(content, str):
            return self.text(content)
        return [self.block(block) for block in content]

    def message(self, message: BaseMessage) -> BaseMessage:
        update: dict[str, Any] = {"content": self.content(message.content)}
        if message.additional_kwargs:
            update["additional_kwargs"] = self.json(message.additional_kwargs, IDENTIFIER_KEYS)
        if isinstance(message, AIMessage):
            update["tool_calls"] = [{**call, "args": self.json(call["args"])} for call in message.tool_calls]
            update["invalid_tool_calls"] = [
                {**call, "args": self._arguments(args)} if (args := call.get("args")) else call
                for call in message.invalid_tool_calls
            ]
        if isinstance(message, AIMessageChunk):
            update["tool_call_chunks"] = [
                {**call, "args": self._arguments(args)} if (args := call.get("args")) else call
                for call in message.tool_call_chunks
            ]
        return message.model_copy(update=update)

    def messages(self, messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        return [self.message(message) for message in messages]

    def document(self, document: Document) -> Document:
        return document.model_copy(
            update={"page_content": self.text(document.page_content), "metadata": self.json(document.metadata)}
        )

    def value(self, value: Any) -> Any:
        """Any input a runnable may take: text, messages, prompt values, documents, dicts and lists of them."""
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, BaseMessage):
            return self.message(value)
        if isinstance(value, StringPromptValue):
            return StringPromptValue(text=self.text(value.text))
        if isinstance(value, PromptValue):
            return ChatPromptValue(messages=self.messages(value.to_messages()))
        if isinstance(value, Document):
            return self.document(value)
        if isinstance(value, Mapping):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        # Fail closed: an object veil cannot walk may carry personal data.
        raise ConfigError(
            f"cannot anonymize a value of type {type(value).__name__}: give text, messages, documents, "
            "prompt values, or dicts and lists of them"
        )


class Restorer:
    """Restores LangChain values within one session."""

    def __init__(self, session: Session, *, lenient: bool = False) -> None:
        self.session = session
        self.lenient = lenient

    def text(self, text: str) -> str:
        if not text:
            return text
        value: str = self.session.restore(text, lenient=self.lenient)
        return value

    def json(self, value: Any) -> Any:
        return self.session.restore(value, lenient=self.lenient)

    def block(self, block: Any) -> Any:
        if isinstance(block, str):
            return self.text(block)
        if not isinstance(block, Mapping) or block.get("type") in BINARY_BLOCK_TYPES:
            return block
        kind = block.get("type")
        if kind in TEXT_FIELDS:
            field = TEXT_FIELDS[kind]
            return {**block, field: self.text(block[field])} if isinstance(block.get(field), str) else dict(block)
        return self.json(dict(block))

    def content(self, content: str | list[Any]) -> str | list[Any]:
        if isinstance(content, str):
            return self.text(content)
        return [self.block(block) for block in content]

    def message(self, message: BaseMessage) -> BaseMessage:
        update: dict[str, Any] = {"content": self.content(message.content)}
        if message.additional_kwargs:
            update["additional_kwargs"] = self.json(message.additional_kwargs)
        if isinstance(message, AIMessage):
            update["tool_calls"] = [{**call, "args": self.json(call["args"])} for call in message.tool_calls]
            update["invalid_tool_calls"] = [
                {**call, "args": self.json({"arguments": call["args"]})["arguments"]} if call.get("args") else call
                for call in message.invalid_tool_calls
            ]
        return message.model_copy(update=update)

    def value(self, value: Any) -> Any:
        """Any output a runnable may give; values of other types come back as they are."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, BaseMessage):
            return self.message(value)
        if isinstance(value, Document):
            return value.model_copy(
                update={"page_content": self.text(value.page_content), "metadata": self.json(value.metadata)}
            )
        if isinstance(value, BaseModel):
            return type(value).model_validate(self.value(value.model_dump()))
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return value
        if isinstance(value, Mapping):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value


class MessageStreamRestorer:
    """Restores a stream of `AIMessageChunk`s: text (string content or text/reasoning blocks by index)
    and tool-call arguments (by index), each through its own core streaming restorer."""

    def __init__(self, session: Session, *, lenient: bool = False) -> None:
        self.session = session
        self.lenient = lenient
        self._streams: dict[tuple[str, int | str], HoldBackStream] = {}
        self._string_content = True
        self._per_chunk = Restorer(session, lenient=True)
        self._whole = Restorer(session, lenient=lenient)

    def _stream(self, key: tuple[str, int | str], *, json_string: bool) -> HoldBackStream:
        stream = self._streams.get(key)
        if stream is None:
            stream = self.session.stream_restorer(lenient=self.lenient, json_string=json_string)
            self._streams[key] = stream
        return stream

    def _block(self, block: Any, position: int) -> Any:
        if isinstance(block, str):
            return self._stream(("text", position), json_string=False).feed(block)
        if not isinstance(block, Mapping):
            return block
        kind = block.get("type")
        index = block.get("index", position)
        if kind in TEXT_FIELDS and isinstance(block.get(TEXT_FIELDS[kind]), str):
            field = TEXT_FIELDS[kind]
            return {**block, field: self._stream((kind, index), json_string=False).feed(block[field])}
        if isinstance(block.get("partial_json"), str):
            return {**block, "partial_json": self._stream(("partial_json", index), json_string=True).feed(
                block["partial_json"])}  # fmt: skip
        if isinstance(block.get("args"), str):
            return {**block, "args": self._stream(("args", index), json_string=True).feed(block["args"])}
        if kind in BINARY_BLOCK_TYPES:
            return block
        return self._per_chunk.json(dict(block))

    def feed(self, chunk: AIMessageChunk) -> AIMessageChunk:
        """The chunk with what can be shown now; at the chunk marked last, everything held back too."""
        if (
            isinstance(chunk.content, str)
            and not chunk.tool_call_chunks
            and not chunk.additional_kwargs
            and chunk.chunk_position != "last"
        ):
            # The common case, a piece of text: a copy with the restored text (no revalidation).
            text = self._stream(("text", 0), json_string=False).feed(chunk.content)
            return chunk.model_copy(update={"content": text})
        if isinstance(chunk.content, str):
            content: str | list[Any] = self._stream(("text", 0), json_string=False).feed(chunk.content)
        else:
            self._string_content = False
            content = [self._block(block, position) for position, block in enumerate(chunk.content)]
        tool_call_chunks: list[ToolCallChunk] = []
        for call in chunk.tool_call_chunks:
            index = call.get("index")
            args = call.get("args")
            restored_args: str | None = args
            if args and index is None:
                # Without an index, chunks cannot be merged: providers send such a call whole.
                restored_args = self._whole.json({"arguments": args})["arguments"]
            elif args and index is not None:
                restored_args = self._stream(("tool_args", index), json_string=True).feed(args)
            tool_call_chunks.append(tool_call_chunk(name=call.get("name"), args=restored_args, id=call.get("id"),
                                                    index=index))  # fmt: skip
        additional = dict(chunk.additional_kwargs)
        if additional:
            # Streamed tool calls are restored from `tool_call_chunks`; the raw provider deltas are not kept.
            additional.pop("tool_calls", None)
            additional.pop("function_call", None)
            additional = self._per_chunk.json(additional)
        restored = AIMessageChunk(
            content=content,
            tool_call_chunks=tool_call_chunks,
            additional_kwargs=additional,
            response_metadata=chunk.response_metadata,
            usage_metadata=chunk.usage_metadata,
            id=chunk.id,
            name=chunk.name,
        )
        if chunk.chunk_position == "last":
            restored = restored + self.flush()
            restored.chunk_position = "last"
        return restored

    def flush(self) -> AIMessageChunk:
        """Everything still held back, as one chunk (empty when nothing is)."""
        text_parts: list[Any] = []
        tool_call_chunks: list[ToolCallChunk] = []
        for (kind, index), stream in self._streams.items():
            rest = stream.flush()
            if not rest:
                continue
            if kind == "tool_args":
                tool_call_chunks.append(tool_call_chunk(name=None, args=rest, id=None, index=int(index)))
            elif kind == "text" and self._string_content:
                text_parts.append(rest)
            elif kind in ("partial_json", "args"):
                text_parts.append({"type": "tool_call_chunk" if kind == "args" else "input_json_delta",
                                   kind: rest, "index": index})  # fmt: skip
            else:
                field = TEXT_FIELDS.get(kind, "text")
                text_parts.append({"type": kind, field: rest, "index": index})
        content: str | list[Any] = "".join(text_parts) if self._string_content else text_parts
        return AIMessageChunk(content=content, tool_call_chunks=tool_call_chunks)
