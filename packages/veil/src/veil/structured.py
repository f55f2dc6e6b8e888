"""Walk chat messages and JSON values: anonymize or restore every string leaf.

- Chat messages (OpenAI format): `content` as a string or a list of parts (text parts only),
  tool-call `function.arguments` (a JSON string: parsed, walked, written back; raw text if it is
  not JSON) and the legacy `function_call.arguments` of an assistant message, and tool results
  (`role: "tool"` or `"function"` content). Roles, ids, names of functions and the
  structure are left as they are.
- Any JSON value: every string leaf, except under keys that describe rather than carry data
  (`tools`, `tool_choice`, `response_format`, `model`, `role`, `type`, `id`, `tool_call_id`,
  `name` of a function): tool definitions are left intact. `metadata` is walked: it is the
  caller's data, sent upstream like the rest.
Dict keys are never changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

Path = tuple[str | int, ...]
LeafFunction = Callable[[str, Path], str]

DESCRIPTIVE_KEYS: frozenset[str] = frozenset(
    {"tools", "tool_choice", "response_format", "model", "role", "type", "id", "tool_call_id", "functions",
     "function_call", "stop", "logit_bias", "modalities"}
)  # fmt: skip


def is_messages(value: object) -> bool:
    """True for a list of chat messages (dicts with a `role`)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, Mapping) and isinstance(m.get("role"), str) for m in value)
    )


def map_json(value: Any, leaf: LeafFunction, *, skip: frozenset[str] = DESCRIPTIVE_KEYS, path: Path = ()) -> Any:
    """A copy of `value` with `leaf(string, path)` applied to every string leaf not under `skip`."""
    if isinstance(value, str):
        return leaf(value, path)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if key in skip:
                out[key] = item
            elif key == "arguments" and isinstance(item, str):
                out[key] = map_embedded_json(item, leaf, path=(*path, key))
            elif key == "name" and "arguments" in value and skip:
                out[key] = item  # a function's name, beside its arguments (not inside tool arguments)
            else:
                out[key] = map_json(item, leaf, skip=skip, path=(*path, key))
        return out
    if isinstance(value, list | tuple):
        return [map_json(item, leaf, skip=skip, path=(*path, index)) for index, item in enumerate(value)]
    return value  # numbers, booleans, None


def map_embedded_json(text: str, leaf: LeafFunction, *, path: Path) -> str:
    """Tool-call arguments: a JSON document inside a string. Walk it if it parses, else treat it as text."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return leaf(text, path)
    return json.dumps(map_json(parsed, leaf, skip=frozenset(), path=path), ensure_ascii=False)


def map_messages(messages: list[Any], leaf: LeafFunction) -> list[Any]:
    """A copy of chat messages with `leaf` applied to their content, tool-call arguments and tool results."""
    out = []
    for index, message in enumerate(messages):
        copy = dict(message)
        content = message.get("content")
        if isinstance(content, str):
            copy["content"] = leaf(content, (index, "content"))
        elif isinstance(content, list):
            parts: list[Any] = []
            for part_index, part in enumerate(content):
                if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str):
                    parts.append({**part, "text": leaf(part["text"], (index, "content", part_index, "text"))})
                elif isinstance(part, str):
                    parts.append(leaf(part, (index, "content", part_index)))
                else:
                    parts.append(part)
            copy["content"] = parts
        tool_calls = message.get("tool_calls")
        if isinstance(tool_calls, list):
            calls = []
            for call_index, call in enumerate(tool_calls):
                function = call.get("function") if isinstance(call, Mapping) else None
                if isinstance(function, Mapping) and isinstance(function.get("arguments"), str):
                    arguments = map_embedded_json(
                        function["arguments"], leaf, path=(index, "tool_calls", call_index, "function", "arguments")
                    )
                    calls.append({**call, "function": {**function, "arguments": arguments}})
                else:
                    calls.append(call)
            copy["tool_calls"] = calls
        legacy = message.get("function_call")
        if isinstance(legacy, Mapping) and isinstance(legacy.get("arguments"), str):
            arguments = map_embedded_json(legacy["arguments"], leaf, path=(index, "function_call", "arguments"))
            copy["function_call"] = {**legacy, "arguments": arguments}
        out.append(copy)
    return out
