"""Upgrade guard: the parts of LangChain's agent-middleware interface VeilMiddleware relies on.

If a LangChain release renames a hook, changes its parameters, or stops calling it, these tests
fail with a message naming what moved, before a user's agent silently skips veil."""

from __future__ import annotations

import dataclasses
import inspect
from importlib.metadata import version
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import (
    AgentMiddleware,
    ExtendedModelResponse,
    ModelRequest,
    ModelResponse,
    ToolCallRequest,
)
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_fakes import RecordingChatModel
from langgraph.prebuilt.tool_node import ToolRuntime
from veil_langchain.agents import VeilMiddleware

LANGCHAIN = version("langchain")

HOOKS = {
    "wrap_model_call": ["self", "request", "handler"],
    "awrap_model_call": ["self", "request", "handler"],
    "wrap_tool_call": ["self", "request", "handler"],
    "awrap_tool_call": ["self", "request", "handler"],
    "before_model": ["self", "state", "runtime"],
    "abefore_model": ["self", "state", "runtime"],
}


def moved(what: str) -> str:
    return (
        f"LangChain {LANGCHAIN} changed its agent-middleware interface: {what}. VeilMiddleware "
        "(integrations/veil-langchain/src/veil_langchain/agents.py) must be adapted before this version is allowed."
    )


@pytest.mark.parametrize(("hook", "parameters"), HOOKS.items())
def test_agent_middleware_hooks_keep_their_names_and_parameters(hook: str, parameters: list[str]) -> None:
    base = getattr(AgentMiddleware, hook, None)
    assert base is not None, moved(f"AgentMiddleware.{hook} no longer exists")
    assert list(inspect.signature(base).parameters) == parameters, moved(
        f"AgentMiddleware.{hook}{inspect.signature(base)} no longer takes {parameters}"
    )
    assert inspect.iscoroutinefunction(base) == hook.startswith("a"), moved(
        f"AgentMiddleware.{hook} changed sync/async"
    )
    ours = VeilMiddleware.__dict__.get(hook)
    assert ours is not None and list(inspect.signature(ours).parameters) == parameters


def test_model_request_can_be_overridden_with_model_messages_and_system_message() -> None:
    request: ModelRequest[None] = ModelRequest(model=RecordingChatModel(), messages=[HumanMessage("a")])
    other, messages, system = RecordingChatModel(), [HumanMessage("b")], SystemMessage("s")
    changed = request.override(model=other, messages=messages, system_message=system)  # type: ignore[arg-type]
    assert (changed.model, changed.messages, changed.system_message) == (other, messages, system), moved(
        "ModelRequest.override(model=, messages=, system_message=)"
    )
    assert request.messages[0].text == "a", moved("ModelRequest.override changes the request in place")
    fields = {field.name for field in dataclasses.fields(ModelRequest)}
    assert {"model", "messages", "system_message", "state", "runtime"} <= fields, moved(f"ModelRequest has {fields}")


def test_model_and_tool_results_keep_their_shape() -> None:
    assert [field.name for field in dataclasses.fields(ModelResponse)] == ["result", "structured_response"], moved(
        "ModelResponse fields"
    )
    assert "model_response" in {field.name for field in dataclasses.fields(ExtendedModelResponse)}, moved(
        "ExtendedModelResponse.model_response"
    )
    assert {"tool_call", "runtime"} <= {field.name for field in dataclasses.fields(ToolCallRequest)}, moved(
        "ToolCallRequest fields"
    )
    assert hasattr(ToolCallRequest, "override"), moved("ToolCallRequest.override")
    assert "config" in {field.name for field in dataclasses.fields(ToolRuntime)}, moved("ToolRuntime.config")


def test_create_agent_runs_every_hook_veil_implements() -> None:
    """The agent wires a hook only when a middleware overrides it: the graph must hold our node.
    (That model and tool calls pass through the wrappers is seen by its effect in test_langchain_agents.)"""
    assert "middleware" in inspect.signature(create_agent).parameters, moved("create_agent(middleware=...)")
    agent = create_agent(RecordingChatModel(), [], middleware=[VeilMiddleware(state="anonymized")])
    nodes = set(agent.get_graph().nodes)
    assert "VeilMiddleware.before_model" in nodes, moved(f"before_model is no longer a graph node: {sorted(nodes)}")


def test_veil_middleware_is_an_agent_middleware() -> None:
    middleware: Any = VeilMiddleware()
    assert isinstance(middleware, AgentMiddleware)
    assert middleware.name == "VeilMiddleware"
