"""LlamaIndex chat messages ⇄ plain data the veil Session walks: anonymize what goes to the model,
restore what comes back.

A `ChatMessage` carries text in its blocks (`TextBlock`, `ThinkingBlock`, citations), tool calls
(`ToolCallBlock.tool_kwargs`, or provider objects under `additional_kwargs["tool_calls"]`) and
tool results (messages of role `tool`). Each message becomes a small JSON document, the whole
conversation is anonymized in one `Session.anonymize` call (one detection pass per string, one
audit record), and the documents are written back into copies of the messages. Roles, ids and
tool names are left alone.

Outbound, anything veil cannot read fails closed: an image, audio, video or document block
(unless the caller allows media), or an `additional_kwargs` value that is neither JSON nor a
pydantic model, raises `veil.InputError` instead of reaching the model unscanned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    AudioBlock,
    CachePoint,
    ChatMessage,
    CitableBlock,
    CitationBlock,
    DocumentBlock,
    ImageBlock,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    VideoBlock,
)
from pydantic import BaseModel

from veil import InputError, Session
from veil.entities import LanguageOption
from veil.structured import DESCRIPTIVE_KEYS

MEDIA_BLOCKS = (ImageBlock, AudioBlock, VideoBlock, DocumentBlock)

Plain = Any
"""JSON-shaped data: dicts with string keys, lists, strings, numbers, booleans, None."""


def _plain(value: Any, where: str, *, strict: bool) -> Plain:
    """`value` as JSON-shaped data (pydantic models dumped). Unreadable values raise when `strict`
    (outbound: fail closed) and are returned as they are otherwise (inbound: nothing to leak)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(mode="json"), where, strict=strict)
    if isinstance(value, Mapping):
        return {str(key): _plain(item, f"{where}[{key!r}]", strict=strict) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{index}]", strict=strict) for index, item in enumerate(value)]
    if strict:
        raise InputError(
            f"{where} holds a {type(value).__name__} that veil cannot scan; it was not sent. "
            "Pass JSON values or pydantic models in additional_kwargs."
        )
    return value


def _rebuild(original: Any, plain: Plain) -> Any:
    """Give walked data the type it had: pydantic models (and lists of them) are validated again."""
    if isinstance(original, BaseModel):
        return type(original).model_validate(plain)
    if isinstance(original, list | tuple) and isinstance(plain, list) and len(original) == len(plain):
        return [_rebuild(item, new) for item, new in zip(original, plain, strict=True)]
    if isinstance(original, Mapping) and isinstance(plain, dict):
        return {key: _rebuild(original[key], plain[key]) if key in original else plain[key] for key in plain}
    return plain


def _arguments_to_plain(arguments: dict[str, Any] | str) -> str:
    # Tool arguments travel as one JSON string under "arguments", the key whose string value
    # the core parses and walks whole (no descriptive key of the arguments is skipped).
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def _arguments_from_plain(original: dict[str, Any] | str, walked: str) -> dict[str, Any] | str:
    if isinstance(original, str):
        return walked
    parsed = json.loads(walked)
    return parsed if isinstance(parsed, dict) else original


def _block_to_plain(block: Any, where: str, *, outbound: bool, allow_media: bool) -> Plain:
    if isinstance(block, TextBlock):
        return block.text
    if isinstance(block, ThinkingBlock):
        return block.content
    if isinstance(block, ToolCallBlock):
        return {"arguments": _arguments_to_plain(block.tool_kwargs)}
    if isinstance(block, CitableBlock):
        return {"title": block.title, "source": block.source,
                "content": [_block_to_plain(b, f"{where}.content", outbound=outbound, allow_media=allow_media)
                            for b in block.content]}  # fmt: skip
    if isinstance(block, CitationBlock):
        return {"title": block.title, "source": block.source,
                "content": _block_to_plain(block.cited_content, f"{where}.cited_content", outbound=outbound,
                                           allow_media=allow_media)}  # fmt: skip
    if isinstance(block, CachePoint):
        return None
    if isinstance(block, MEDIA_BLOCKS):
        if outbound and not allow_media:
            raise InputError(
                f"{where} is a {block.block_type} block, which veil cannot scan; it was not sent. "
                "Give the model text, or set allow_media=True to forward media unscanned."
            )
        return None
    if outbound:
        raise InputError(f"{where} is a {type(block).__name__}, which veil cannot scan; it was not sent.")
    return None


def _block_from_plain(block: Any, walked: Plain) -> Any:
    if walked is None:
        return block
    if isinstance(block, TextBlock):
        return block.model_copy(update={"text": walked})
    if isinstance(block, ThinkingBlock):
        return block.model_copy(update={"content": walked})
    if isinstance(block, ToolCallBlock):
        return block.model_copy(update={"tool_kwargs": _arguments_from_plain(block.tool_kwargs, walked["arguments"])})
    if isinstance(block, CitableBlock):
        content = [_block_from_plain(b, w) for b, w in zip(block.content, walked["content"], strict=True)]
        return block.model_copy(update={"title": walked["title"], "source": walked["source"], "content": content})
    if isinstance(block, CitationBlock):
        cited = _block_from_plain(block.cited_content, walked["content"])
        return block.model_copy(update={"title": walked["title"], "source": walked["source"], "cited_content": cited})
    return block  # pragma: no cover - every block with a plain form is handled above


def message_to_plain(message: ChatMessage, where: str, *, outbound: bool, allow_media: bool) -> Plain:
    blocks = [
        _block_to_plain(block, f"{where}.blocks[{index}]", outbound=outbound, allow_media=allow_media)
        for index, block in enumerate(message.blocks)
    ]
    extra = _plain(message.additional_kwargs, f"{where}.additional_kwargs", strict=outbound)
    return {"blocks": blocks, "extra": extra}


def message_from_plain(message: ChatMessage, walked: Plain) -> ChatMessage:
    blocks = [_block_from_plain(block, w) for block, w in zip(message.blocks, walked["blocks"], strict=True)]
    extra = _rebuild(message.additional_kwargs, walked["extra"])
    return message.model_copy(update={"blocks": blocks, "additional_kwargs": extra})


def anonymize_messages(
    session: Session,
    messages: Sequence[ChatMessage],
    *,
    language: LanguageOption | None,
    keep_tokens: bool,
    allow_media: bool,
) -> list[ChatMessage]:
    """Copies of `messages` with every text, tool argument and tool result anonymized (one call)."""
    plain = [
        message_to_plain(message, f"messages[{index}]", outbound=True, allow_media=allow_media)
        for index, message in enumerate(messages)
    ]
    # additional_kwargs follow the OpenAI wire format: ids, types and function names are not data.
    walked = session.anonymize(plain, language=language, skip_keys=DESCRIPTIVE_KEYS, keep_tokens=keep_tokens).value
    return [message_from_plain(message, w) for message, w in zip(messages, walked, strict=True)]


def restore_message(session: Session, message: ChatMessage, *, lenient: bool) -> ChatMessage:
    """A copy of a model's message with every token restored (text, tool-call arguments, extras)."""
    plain = message_to_plain(message, "response.message", outbound=False, allow_media=True)
    return message_from_plain(message, session.restore(plain, lenient=lenient))


def restore_data(session: Session, value: Any, *, lenient: bool) -> Any:
    """A model's extra data (response `additional_kwargs`) with its tokens restored, types kept."""
    if not value:
        return value
    return _rebuild(value, session.restore(_plain(value, "response", strict=False), lenient=lenient))
