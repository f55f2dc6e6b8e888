"""VeilChatModel inside a LangGraph agent (the prebuilt ReAct loop): the tool gets values, the
model tokens, and LangGraph's message stream shows the restored answer only."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.tools import tool
from langchain_fakes import RecordingChatModel
from langgraph.prebuilt import create_react_agent
from veil_langchain import VeilChatModel

from veil import Engine, Veil
from veil.detect import BUILTIN_RULES, RuleDetector

EMAIL = "marie.tremblay@exemple.qc.ca"
SIN = "130 692 544"
RULES = Engine(detectors=[RuleDetector(BUILTIN_RULES)])
CALL = {"name": "customer_file", "args": {"email": "{{EMAIL_1}}"}, "id": "call-1"}
calls: list[str] = []

# create_react_agent is LangGraph's prebuilt loop; its successor lives in the `langchain` package.
pytestmark = pytest.mark.filterwarnings("ignore:create_react_agent has been moved")


@tool
def customer_file(email: str) -> str:
    """The customer file of an e-mail address."""
    calls.append(email)
    return f"SIN {SIN}, plan Gold"


def agent_over(upstream: RecordingChatModel):  # type: ignore[no-untyped-def]
    llm = VeilChatModel(model=upstream, veil=Veil(engine=RULES), scope="graph-1")
    return create_react_agent(llm, [customer_file])


def test_react_agent_runs_the_tool_on_values_and_the_model_on_tokens() -> None:
    calls.clear()
    upstream = RecordingChatModel(script=[AIMessage(content="", tool_calls=[CALL])])
    result = agent_over(upstream).invoke({"messages": [HumanMessage(f"What plan is {EMAIL} on?")]})
    assert calls == [EMAIL]
    assert result["messages"][-1].content == f"You said: SIN {SIN}, plan Gold"
    assert upstream.received[1][-1].content == "SIN {{CA_SIN_1}}, plan Gold"
    assert EMAIL not in upstream.seen_text() and SIN not in upstream.seen_text()


def test_langgraph_message_stream_shows_restored_chunks_only() -> None:
    calls.clear()
    upstream = RecordingChatModel(script=[AIMessage(content="", tool_calls=[CALL])], chunk_size=3)
    streamed = []
    for message, _metadata in agent_over(upstream).stream(
        {"messages": [HumanMessage(f"What plan is {EMAIL} on?")]}, stream_mode="messages"
    ):
        if isinstance(message, AIMessageChunk):
            streamed.append(message)
    text = "".join(chunk.text for chunk in streamed)
    assert text == f"You said: SIN {SIN}, plan Gold"
    assert all("{{" not in chunk.text and "CA_SIN" not in chunk.text for chunk in streamed)
    assert calls == [EMAIL]
