#!/usr/bin/env python3
"""Overhead of VeilMiddleware on a LangChain 1.x agent run (`create_agent`), per run.

Run: uv run python benchmarks/langchain_agent_overhead.py [--runs 200]

One run is one question on a fresh thread: three model calls and two tool calls (look a customer
up by e-mail, text the phone number found), with an in-memory checkpointer. The model is a local
stand-in that answers at once from the tokens it was given, so the difference between the rows
is veil's cost alone, in both state modes. Rules engine, in-memory vault.

Numbers are wall-clock and CPU time on a shared 2-core machine with other jobs running: read them
as an order of magnitude, and compare the rows of one run rather than runs with each other.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from veil_langchain.agents import VeilMiddleware

from veil import Engine, Veil
from veil.detect import BUILTIN_RULES, RuleDetector


@tool
def lookup_customer(email: str) -> str:
    """The customer file of an e-mail address."""
    return f"Customer {email}, mobile +1 514 872 3456, plan Gold"


@tool
def send_message(phone: str, text: str) -> str:
    """Send a text message to a phone number."""
    return f"message sent to {phone}"


def first(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    return found.group(0) if found else ""


class InstantModel(BaseChatModel):
    """Calls the two tools with what it was given, then answers, at once."""

    @property
    def _llm_type(self) -> str:
        return "instant"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:  # fmt: skip
        last = messages[-1]
        if isinstance(last, HumanMessage):
            args = {"email": first(r"\{\{EMAIL_\d+\}\}|\S+@\S+", last.text)}
            answer = AIMessage("", tool_calls=[{"name": "lookup_customer", "args": args, "id": "c1"}])
        elif isinstance(last, ToolMessage) and last.name == "lookup_customer":
            args = {"phone": first(r"\{\{PHONE_\d+\}\}|\+1 \d{3} \d{3} \d{4}", last.text), "text": "Shipped."}
            answer = AIMessage("", tool_calls=[{"name": "send_message", "args": args, "id": "c2"}])
        else:
            answer = AIMessage(f"Done: {last.text}.")
        return ChatResult(generations=[ChatGeneration(message=answer)])


def agent_run(middleware: list[Any]) -> Callable[[int], object]:
    agent = create_agent(InstantModel(), [lookup_customer, send_message], middleware=middleware,
                         checkpointer=InMemorySaver())  # fmt: skip

    def run(n: int) -> object:
        question = f"Please tell client{n}@exemple.qc.ca (ticket {n}) that the order has shipped."
        return agent.invoke({"messages": [HumanMessage(question)]}, {"configurable": {"thread_id": f"t{n}"}})

    return run


def timed(run: Callable[[int], object], runs: range) -> tuple[list[float], list[float]]:
    wall, cpu = [], []
    for n in runs:
        start, start_cpu = time.perf_counter(), time.process_time()
        run(n)
        cpu.append((time.process_time() - start_cpu) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    engine = Engine(detectors=[RuleDetector(BUILTIN_RULES)])

    def veil() -> Veil:
        return Veil(engine=engine, audit_traffic=False)

    rows = [
        ("no middleware", agent_run([])),
        ("VeilMiddleware, state=restored", agent_run([VeilMiddleware(veil=veil())])),
        ("VeilMiddleware, state=anonymized", agent_run([VeilMiddleware(veil=veil(), state="anonymized")])),
    ]
    for _, run in rows:  # warm up: imports, compiled patterns, graph caches
        timed(run, range(-20, 0))
    print(f"{args.runs} agent runs (3 model calls, 2 tool calls each); rules engine, memory vault\n")
    print(f"{'agent':34} {'wall p50':>9} {'cpu p50':>9} {'cpu p90':>9} {'cpu overhead p50':>17}")
    base_cpu = 0.0
    for name, run in rows:
        wall, cpu = timed(run, range(args.runs))
        median_cpu = statistics.median(cpu)
        base_cpu = base_cpu or median_cpu
        p90 = statistics.quantiles(cpu, n=10)[-1]
        print(f"{name:34} {statistics.median(wall):7.2f}ms {median_cpu:7.2f}ms {p90:7.2f}ms "
              f"{median_cpu - base_cpu:15.2f}ms")  # fmt: skip


if __name__ == "__main__":
    main()
