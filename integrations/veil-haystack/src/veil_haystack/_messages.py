"""Haystack ChatMessages through a veil Session: every text a model reads or writes, and nothing else.

The texts of a list of messages — text parts, tool-call arguments (every string value, at any
depth; keys are parameter names and stay), tool results and the arguments of the call they
answer, reasoning — are gathered in order, passed to the Session in one call (one vault
transaction per text, one audit record per call), and put back into copies of the messages.
Roles, names, ids, tool names and meta stay as they are. Images and files cannot be read by veil:
on the way to a model they are refused unless the caller forwards them knowingly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from haystack.dataclasses import ChatMessage, ReasoningContent, TextContent, ToolCall, ToolCallResult

from veil import InputError
from veil.session import Session

Take = Callable[[str], str]


def _walk_value(value: Any, take: Take) -> Any:
    if isinstance(value, str):
        return take(value)
    if isinstance(value, dict):
        return {key: _walk_value(item, take) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_walk_value(item, take) for item in value]
    return value


def _walk_call(call: ToolCall, take: Take) -> ToolCall:
    return replace(call, arguments=_walk_value(call.arguments, take))


def _walk_part(part: Any, take: Take, media: Callable[[Any], None]) -> Any:
    if isinstance(part, TextContent):
        return TextContent(take(part.text))
    if isinstance(part, ToolCall):
        return _walk_call(part, take)
    if isinstance(part, ToolCallResult):
        if isinstance(part.result, str):
            result: Any = take(part.result)
        else:
            result = [_walk_part(item, take, media) for item in part.result]
        return ToolCallResult(result=result, origin=_walk_call(part.origin, take), error=part.error)
    if isinstance(part, ReasoningContent):
        return replace(part, reasoning_text=take(part.reasoning_text))
    media(part)
    return part


def _walk(messages: Sequence[ChatMessage], take: Take, media: Callable[[Any], None]) -> list[ChatMessage]:
    out = []
    for message in messages:
        content = [_walk_part(part, take, media) for part in message._content]
        out.append(replace(message, _content=content))
    return out


def _refuse_media(part: Any) -> None:
    raise InputError(
        f"a {type(part).__name__} in a chat message cannot be checked for personal data; "
        "remove it, or set forward_media=True to send images and files to the model as they are"
    )


def _keep_media(part: Any) -> None:
    return None


def map_texts(
    messages: Sequence[ChatMessage], transform: Callable[[list[str]], list[str]], *, refuse_media: bool
) -> list[ChatMessage]:
    """Copies of `messages` whose texts are replaced by `transform(all texts, in order)`."""
    texts: list[str] = []

    def collect(text: str) -> str:
        texts.append(text)
        return text

    media = _refuse_media if refuse_media else _keep_media
    _walk(messages, collect, media)
    if not texts:
        return list(messages)
    replaced = transform(texts)
    if len(replaced) != len(texts):  # pragma: no cover - the core maps a list leaf by leaf
        raise InputError("internal error: the number of texts changed while anonymizing chat messages")
    feed: Iterator[str] = iter(replaced)
    return _walk(messages, lambda _: next(feed), _keep_media)


def anonymize_messages(
    session: Session, messages: Sequence[ChatMessage], *, forward_media: bool
) -> tuple[list[ChatMessage], int]:
    """The messages as the model may see them, and how many values were replaced. Raises (never
    passes text through) if anything fails."""
    count = 0

    def transform(texts: list[str]) -> list[str]:
        nonlocal count
        anonymized = session.anonymize(texts)
        count = anonymized.pii_count
        return list(anonymized.value)

    return map_texts(messages, transform, refuse_media=not forward_media), count


def restore_messages(session: Session, messages: Sequence[ChatMessage], *, lenient: bool) -> list[ChatMessage]:
    """The messages with the scope's tokens replaced by their values."""
    return map_texts(messages, lambda texts: list(session.restore(texts, lenient=lenient)), refuse_media=False)
