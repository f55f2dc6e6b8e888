"""A LangChain 1.x agent (`create_agent`) behind VeilMiddleware: tools get values, the model only tokens.

The agent has two tools: one looks a customer up by e-mail address, one sends a text message to a
phone number. The model is a local stand-in for a provider that calls tools: it can only work with
what it is given, so it asks for the customer file of the e-mail token it sees, texts the phone
token in that file, and reports. VeilMiddleware anonymizes everything the model receives, restores
its tool calls before the tools run and its answer before the user (and the stream) sees it, and
keeps one mapping per conversation thread.

Needs the agents extra: pip install 'veil-langchain[agents]'.
Run: uv run python examples/langchain_create_agent.py
"""

from __future__ import annotations

import re
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import Field
from veil_langchain.agents import VeilMiddleware

from veil import Veil

CUSTOMERS = {"marie.tremblay@exemple.qc.ca": "+1 514 872 3456"}
OUTBOX: list[tuple[str, str]] = []


@tool
def lookup_customer(email: str) -> str:
    """The customer file of an e-mail address."""
    print("tool lookup_customer got:", email)
    phone = CUSTOMERS.get(email)
    return f"Customer {email}, mobile {phone}, plan Gold" if phone else "no such customer"


@tool
def send_message(phone: str, text: str) -> str:
    """Send a text message to a phone number."""
    print("tool send_message got:   ", phone)
    OUTBOX.append((phone, text))
    return f"message sent to {phone}"


def token(text: str, entity: str) -> str:
    found = re.search(r"\{\{" + entity + r"_\d+\}\}", text)
    return found.group(0) if found else "unknown"


class ToolCallingModel(BaseChatModel):
    """A deterministic stand-in for a tool-calling provider (the only thing faked here)."""

    transcript: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "tool-calling-stand-in"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:  # fmt: skip
        self.transcript.append(f"{type(messages[-1]).__name__}: {messages[-1].text}")
        return ChatResult(generations=[ChatGeneration(message=self._next_step(messages))])

    def _next_step(self, messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, HumanMessage):
            call = {"name": "lookup_customer", "args": {"email": token(last.text, "EMAIL")}, "id": "call-1"}
            return AIMessage("", tool_calls=[call])
        if isinstance(last, ToolMessage) and last.name == "lookup_customer":
            args = {"phone": token(last.text, "PHONE"), "text": "Your order has shipped."}
            return AIMessage("", tool_calls=[{"name": "send_message", "args": args, "id": "call-2"}])
        asked = next(m for m in messages if isinstance(m, HumanMessage)).text
        return AIMessage(f"Done: I texted {token(messages[-3].text, 'PHONE')} for {token(asked, 'EMAIL')}.")


def main() -> None:
    veil = Veil()  # one per application; Veil.open(path) keeps mappings in an encrypted SQLite vault
    model = ToolCallingModel()
    agent = create_agent(
        model,
        [lookup_customer, send_message],
        middleware=[VeilMiddleware(veil=veil)],  # last in the list: it wraps whichever model runs
        checkpointer=InMemorySaver(),
    )
    config = {"configurable": {"thread_id": "ticket-4821"}}  # one thread, one mapping
    question = {"messages": [HumanMessage("Tell marie.tremblay@exemple.qc.ca that her order has shipped.")]}

    streamed = []
    for message, _metadata in agent.stream(question, config, stream_mode="messages"):
        if isinstance(message, AIMessageChunk) and message.text:
            streamed.append(message.text)

    for line in model.transcript:
        print("to the model:            ", line)
    print("streamed to the user:    ", "".join(streamed))
    final = agent.get_state(config).values["messages"][-1]
    print("in the thread's state:   ", final.text)


if __name__ == "__main__":
    main()
