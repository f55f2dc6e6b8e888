#!/usr/bin/env python3
"""Overhead of the veil-llamaindex wrappers over the bare LlamaIndex models they wrap, per
~300-character message.

Run: uv run python benchmarks/llamaindex_overhead.py [--calls 2000]

The wrapped models answer instantly — an echo LLM (it repeats the tokens it was given, so
restore has work to do) and a word-hashing embedding — so the difference between the two
columns is veil's cost alone: anonymizing the input, one more call through LlamaIndex's
instrumentation, and restoring the answer (whole, or streamed in 4-character chunks). The rules
engine and the in-memory vault are used, audit of traffic on (veil's default); target: overhead
p50 <= 1 ms per message.

Rows:
- chat / complete / stream_chat, one conversation scope; each message carries new values (an
  e-mail, a phone number, a SIN, a card), so every call tokenizes four new values;
- the same messages again (values already in the vault: a new Session finds them by blind index);
- embedding: get_text_embedding of the message;
- VeilTransform: one node of the message through the ingestion transform (bare: building the node).

Numbers are wall-clock on a shared 2-core machine with other jobs running: read them as an order
of magnitude, and compare the columns of one run rather than runs with each other.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    CustomLLM,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.schema import TextNode
from overhead_corpus import message
from veil_llamaindex import VeilEmbedding, VeilLLM, VeilTransform

from veil import Engine, Veil
from veil.detect import BUILTIN_RULES, RuleDetector

Row = tuple[list[float], list[float]]


class EchoLLM(CustomLLM):
    """Answers at once with the last message (or the prompt); streams it in 4-character chunks."""

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_chat_model=True, model_name="echo")

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=messages[-1].content))

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        text = messages[-1].content or ""

        def generate() -> Any:
            so_far = ""
            for start in range(0, len(text), 4):
                so_far += text[start : start + 4]
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=so_far),
                                   delta=text[start : start + 4])  # fmt: skip

        return generate()

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=prompt)

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError


class HashEmbedding(BaseEmbedding):
    """A word-hashing embedding that costs next to nothing."""

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * 64
        for word in text.split():
            vector[hashlib.blake2b(word.encode(), digest_size=1).digest()[0] % 64] += 1.0
        return vector

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed(text)


def timed(function: Callable[[str], object], items: list[str]) -> list[float]:
    out = []
    for item in items:
        start = time.perf_counter()
        function(item)
        out.append((time.perf_counter() - start) * 1e3)
    return out


def paired(bare: Callable[[str], object], wrapped: Callable[[str], object], items: list[str]) -> Row:
    """Bare and wrapped calls alternate message by message, so that the noise of a shared machine
    falls on both alike; the overhead is the median of the per-message differences."""
    bare_ms, wrapped_ms = [], []
    for item in items:
        bare_ms += timed(bare, [item])
        wrapped_ms += timed(wrapped, [item])
    return bare_ms, wrapped_ms


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[94]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(7)
    messages = [message(rng, i) for i in range(args.calls)]

    veil = Veil(engine=Engine(detectors=[RuleDetector(BUILTIN_RULES)]))
    echo, embedding = EchoLLM(), HashEmbedding()
    llm = VeilLLM(llm=echo, veil=veil, scope="conversation")
    embed = VeilEmbedding(embed_model=embedding, veil=veil, scope="collection")
    transform = VeilTransform(veil=veil, scope="collection")
    for text in messages[:50]:  # warm up: compiled patterns, first vault rows
        llm.chat([ChatMessage(role="user", content=text)])

    def chat(model: Any) -> Callable[[str], object]:
        return lambda text: model.chat([ChatMessage(role="user", content=text)])

    def stream(model: Any) -> Callable[[str], object]:
        return lambda text: [r.delta for r in model.stream_chat([ChatMessage(role="user", content=text)])]

    fresh = messages[50:]
    conversation = llm.for_scope("conversation-2")
    rows: list[tuple[str, Row]] = [
        ("chat, new values", paired(chat(echo), chat(llm), fresh)),
        ("chat, values already in the vault", paired(chat(echo), chat(llm), fresh)),
        ("complete, values already in the vault", paired(echo.complete, llm.complete, fresh)),
        ("stream_chat (4-char chunks), new values", paired(stream(echo), stream(conversation), fresh)),
        ("embedding, get_text_embedding", paired(embedding.get_text_embedding, embed.get_text_embedding, fresh)),
        (
            "VeilTransform, one node",
            paired(lambda text: TextNode(text=text), lambda text: transform([TextNode(text=text)]), fresh),
        ),
    ]

    size = sum(map(len, fresh)) // len(fresh)
    print(f"## veil-llamaindex overhead ({len(fresh)} messages of ~{size} chars, rules engine, memory vault)\n")
    print("| path | bare p50 ms | wrapped p50 ms | overhead p50 ms (paired) | wrapped p95 ms |")
    print("|---|---|---|---|---|")
    for label, (bare, wrapped) in rows:
        overhead = statistics.median(w - b for w, b in zip(wrapped, bare, strict=True))
        print(f"| {label} | {statistics.median(bare):.3f} | {statistics.median(wrapped):.3f} | {overhead:.3f} | "
              f"{p95(wrapped):.3f} |")  # fmt: skip
    print("\nShared 2-core machine, other jobs running: wall-clock numbers are noisy.")


if __name__ == "__main__":
    main()
