#!/usr/bin/env python3
"""Overhead of VeilChatModel over the bare chat model it wraps, per ~300-character message.

Run: uv run python benchmarks/langchain_overhead.py [--calls 2000]

The wrapped model is a local echo model that answers instantly (it echoes the tokens it was
given, so restore has work to do), so the difference between the two columns is veil's cost
alone: anonymizing the message, calling through LangChain's callback machinery once more, and
restoring the answer (whole, or streamed in 4-character chunks). The rules engine and the
in-memory vault are used (the target: p50 <= 1 ms with the rules engine).

Rows:
- the core alone (Session.anonymize + restore of the message, no LangChain): veil's own share;
- invoke, scope per conversation (`scope=`): values are new the first time, then found again;
- invoke, no scope (a mapping per call, erased when the call ends: one erase per call);
- stream, scope per conversation.

Numbers are wall-clock on a shared 2-core machine with other jobs running: read them as an
order of magnitude, and compare the two columns of one run rather than runs with each other.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from overhead_corpus import message
from veil_langchain import VeilChatModel

from veil import Engine, Veil
from veil.detect import BUILTIN_RULES, RuleDetector


class EchoModel(BaseChatModel):
    """Answers at once with the last message, streamed in 4-character chunks."""

    @property
    def _llm_type(self) -> str:
        return "echo"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:  # fmt: skip
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=messages[-1].text))])

    def _stream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:  # fmt: skip
        text = messages[-1].text
        for start in range(0, len(text), 4):
            yield ChatGenerationChunk(message=AIMessageChunk(content=text[start : start + 4]))


def timed(call: Callable[[str], object], texts: list[str]) -> tuple[list[float], list[float]]:
    """Milliseconds per call: wall clock, and CPU time of this process (less disturbed by other jobs)."""
    wall, cpu = [], []
    for text in texts:
        start, start_cpu = time.perf_counter(), time.process_time()
        call(text)
        cpu.append((time.process_time() - start_cpu) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
    return wall, cpu


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(7)
    texts = [message(rng, n % 50) for n in range(args.calls)]  # 50 clients: values recur, as in a conversation
    engine = Engine(detectors=[RuleDetector(BUILTIN_RULES)])
    bare = EchoModel()
    scoped = VeilChatModel(model=bare, veil=Veil(engine=engine, audit_traffic=False), scope="bench")
    per_call = VeilChatModel(model=bare, veil=Veil(engine=engine, audit_traffic=False))

    def stream(model: BaseChatModel) -> Callable[[str], object]:
        return lambda text: "".join(chunk.text for chunk in model.stream(text))

    core_veil = Veil(engine=engine, audit_traffic=False)

    def core_only(text: str) -> object:
        session = core_veil.session("bench")
        return session.restore(session.anonymize(text).text)

    rows = [
        ("core alone: anonymize + restore", lambda text: None, core_only),
        ("invoke, scope per conversation", bare.invoke, scoped.invoke),
        ("invoke, no scope (per call)", bare.invoke, per_call.invoke),
        ("stream, scope per conversation", stream(bare), stream(scoped)),
    ]
    for _, base, wrapped in rows:  # warm up: imports, compiled patterns, first vault rows
        timed(base, texts[:50])
        timed(wrapped, texts[:50])
    mean_length = statistics.mean(len(t) for t in texts)
    print(f"{args.calls} messages of {mean_length:.0f} characters on average; rules engine, memory vault\n")
    print(f"{'path':32} {'clock':6} {'bare p50':>9} {'veil p50':>9} {'overhead p50':>13} {'veil p90':>9}")
    for name, base, wrapped in rows:
        bare_wall, bare_cpu = timed(base, texts)
        veil_wall, veil_cpu = timed(wrapped, texts)
        for clock, bare_times, veil_times in (("wall", bare_wall, veil_wall), ("cpu", bare_cpu, veil_cpu)):
            overhead = statistics.median(veil_times) - statistics.median(bare_times)
            print(f"{name:32} {clock:6} {p(bare_times, 50):7.3f}ms {p(veil_times, 50):7.3f}ms "
                  f"{overhead:11.3f}ms {p(veil_times, 90):7.3f}ms")  # fmt: skip


if __name__ == "__main__":
    main()
