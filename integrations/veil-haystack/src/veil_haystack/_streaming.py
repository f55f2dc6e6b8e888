"""Restore a Haystack stream of StreamingChunks before the user's callback sees it.

Each content block of the stream — the text, each tool call's arguments (a JSON text, restored
with values escaped for the inside of a JSON string), the reasoning — has its own
`Session.stream_restorer()`: a token cut across chunks is held back until it is complete, and is
never shown half-restored. When the model moves to another block, the one it leaves is flushed
(its held-back tail is sent as a chunk of its own, before the new block's first chunk); the
finishing chunk, and the end of the run, flush the rest. Chunks are copied when their text changes,
never changed in place: the wrapped generator builds its reply from its own chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from haystack.dataclasses import ReasoningContent, StreamingChunk, ToolCallDelta

from veil.session import Session

_TEXT, _TOOL, _REASONING = "text", "tool", "reasoning"
StreamKey = tuple[str, int | None]
_TEXT_KEY: StreamKey = (_TEXT, None)
_REASONING_KEY: StreamKey = (_REASONING, None)


class _Block:
    def __init__(self, restorer: Any, chunk: StreamingChunk) -> None:
        self.restorer = restorer
        self.chunk = chunk  # the block's first chunk: where its remainder chunk takes index and component info


class ChunkRestorer:
    """Turns the wrapped generator's chunks into restored chunks (see the module docstring)."""

    def __init__(self, session: Session, *, lenient: bool) -> None:
        self._session = session
        self._lenient = lenient
        self._blocks: dict[StreamKey, _Block] = {}

    def _block(self, key: StreamKey, chunk: StreamingChunk) -> _Block:
        block = self._blocks.get(key)
        if block is None:
            restorer = self._session.stream_restorer(lenient=self._lenient, json_string=key[0] == _TOOL)
            block = self._blocks[key] = _Block(restorer, chunk)
        return block

    @staticmethod
    def _keys(chunk: StreamingChunk) -> list[StreamKey]:
        if chunk.tool_calls:
            return [(_TOOL, delta.index) for delta in chunk.tool_calls]
        # One stream for the text and one for the reasoning, whatever index a generator gives their
        # chunks (some give None, then 0): a token is never cut by an index that changes mid-text.
        if chunk.reasoning is not None:
            return [_REASONING_KEY]
        if chunk.content:
            return [_TEXT_KEY]
        return []

    def _remainder(self, key: StreamKey, block: _Block) -> StreamingChunk | None:
        rest: str = block.restorer.flush()
        if not rest:
            return None
        first = block.chunk
        kind, index = key
        if kind == _TOOL:
            delta = ToolCallDelta(index=index if index is not None else 0, arguments=rest)
            return StreamingChunk(
                content="", component_info=first.component_info, index=first.index, tool_calls=[delta]
            )
        if kind == _REASONING:
            return StreamingChunk(
                content="", component_info=first.component_info, index=first.index, reasoning=ReasoningContent(rest)
            )
        return StreamingChunk(content=rest, component_info=first.component_info, index=first.index, meta=first.meta)

    def _flush(self, keep: Callable[[StreamKey], bool]) -> list[StreamingChunk]:
        out = []
        for key in [key for key in self._blocks if not keep(key)]:
            chunk = self._remainder(key, self._blocks.pop(key))
            if chunk is not None:
                out.append(chunk)
        return out

    def process(self, chunk: StreamingChunk) -> list[StreamingChunk]:
        """The restored chunks to show for one chunk of the wrapped generator, in order."""
        keys = self._keys(chunk)
        finishing = chunk.finish_reason is not None
        # Leaving a block (or finishing) sends the held-back tails of the other blocks first.
        out = self._flush(lambda key: key in keys) if keys or finishing else []

        def restore(key: StreamKey, text: str) -> str:
            block = self._block(key, chunk)
            shown: str = block.restorer.feed(text)
            if finishing:
                shown += block.restorer.flush()
                del self._blocks[key]
            return shown

        # A chunk with nothing to restore nor hold back is passed on as it is (most chunks: no copy).
        if chunk.tool_calls:
            deltas = []
            for delta in chunk.tool_calls:
                arguments = restore((_TOOL, delta.index), delta.arguments) if delta.arguments else delta.arguments
                deltas.append(delta if arguments == delta.arguments else replace(delta, arguments=arguments))
            changed = any(new is not old for new, old in zip(deltas, chunk.tool_calls, strict=True))
            out.append(replace(chunk, tool_calls=deltas) if changed else chunk)
        elif chunk.reasoning is not None:
            text = restore(_REASONING_KEY, chunk.reasoning.reasoning_text)
            unchanged = text == chunk.reasoning.reasoning_text
            out.append(chunk if unchanged else replace(chunk, reasoning=replace(chunk.reasoning, reasoning_text=text)))
        elif chunk.content:
            text = restore(_TEXT_KEY, chunk.content)
            out.append(chunk if text == chunk.content else replace(chunk, content=text))
        else:
            out.append(chunk)
        if finishing:
            out[-1:-1] = self._flush(lambda key: False)  # blocks opened by this chunk without text
        return out

    def finish(self) -> list[StreamingChunk]:
        """The held-back tails still pending when the wrapped generator returns."""
        return self._flush(lambda key: False)
