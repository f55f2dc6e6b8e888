"""A tool-calling agent behind veil: the tool gets real values, the model only tokens.

The loop is the one LangGraph's prebuilt agents run: call the model with the tools bound, run the
tools it asks for, append their results, and call it again until it answers. The model is a local
stand-in that asks for the customer file of the first e-mail token it sees, then summarises the
tool's answer; veil restores its tool-call arguments before the tool runs, and anonymizes the
tool's result before the model reads it.

Run: uv run python examples/langchain_agent.py
"""

from __future__ import annotations

import re
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field
from veil_langchain import VeilChatModel

from veil import Veil

CUSTOMERS = {"marie.tremblay@exemple.qc.ca": "phone +1 514 872 3456, SIN 130 692 544, plan Gold"}


@tool
def customer_file(email: str) -> str:
    """The customer file of an e-mail address."""
    print("tool called with:", email)
    return CUSTOMERS.get(email, "no such customer")


class ToolUsingModel(BaseChatModel):
    """A local chat model standing in for a provider that calls tools."""

    transcript: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "tool-using-model"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:  # fmt: skip
        self.transcript.extend(
            f"{type(m).__name__}: {m.text or m.tool_calls}" for m in messages[len(self.transcript) :]
        )
        last = messages[-1]
        if isinstance(last, ToolMessage):
            answer = AIMessage(f"Their file says: {last.text}.")
        else:
            email = re.search(r"\{\{EMAIL_\d+\}\}", last.text)
            call = {"name": "customer_file", "args": {"email": email.group(0) if email else ""}, "id": "call-1"}
            answer = AIMessage(content="", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=answer)])


def main() -> None:
    veil = Veil()
    model = ToolUsingModel()
    agent = VeilChatModel(model=model, veil=veil, scope="chat-2048").bind_tools([customer_file])
    tools = {"customer_file": customer_file}

    messages: list[BaseMessage] = [HumanMessage("What plan is marie.tremblay@exemple.qc.ca on?")]
    while True:
        reply = agent.invoke(messages)
        messages.append(reply)
        if not isinstance(reply, AIMessage) or not reply.tool_calls:
            break
        for call in reply.tool_calls:
            messages.append(tools[call["name"]].invoke(call))

    for line in model.transcript:
        print("to the model:  ", line)
    print("to the user:   ", messages[-1].text)


if __name__ == "__main__":
    main()
