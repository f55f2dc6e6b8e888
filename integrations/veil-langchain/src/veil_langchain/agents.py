"""VeilMiddleware: LangChain 1.x agents (`langchain.agents.create_agent`) whose model never sees a value.

    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver
    from veil_langchain.agents import VeilMiddleware

    agent = create_agent(model, tools, middleware=[VeilMiddleware(veil=veil)], checkpointer=InMemorySaver())
    agent.invoke({"messages": [...]}, {"configurable": {"thread_id": "42"}})

Where it sits in the agent loop (LangChain's agent-middleware hooks):

- `wrap_model_call`: every message the model is given (system prompt, history, tool results) is
  anonymized in the thread's scope, and the model is wrapped in a `VeilChatModel` bound to that
  scope, so that its answer is restored before anything else sees it: the streamed tokens
  (`stream_mode="messages"`, a token cut between chunks held back), the tool-call arguments and
  the structured output. An inner middleware that swaps the model still only hands it tokens.
- `wrap_tool_call`: tools run on restored arguments; in the "anonymized" state mode their results
  are anonymized before they enter the graph state.
- `before_model` ("anonymized" state mode): new messages in the state (the user's input) are
  replaced by their anonymized copies, so the checkpointer never stores a value.

One scope per thread: a run's scope is `config["configurable"]["veil_scope"]` if set, else the
`scope` callable's answer, else `"<scope or 'thread'>:<thread_id>"`. Without a thread id each
model call has a mapping of its own, erased when the call ends (restored state mode only).

This module needs the `agents` extra (`pip install 'veil-langchain[agents]'`, LangChain 1.x);
`import veil_langchain` does not import it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Literal, cast

try:
    from langchain.agents.middleware import (
        AgentMiddleware,
        AgentState,
        ExtendedModelResponse,
        ModelRequest,
        ModelResponse,
        ToolCallRequest,
    )
    from langgraph.config import get_config
    from langgraph.runtime import Runtime
    from langgraph.types import Command
except ImportError as error:  # pragma: no cover - exercised by .ci/standalone without the extra
    raise ImportError(
        "veil_langchain.agents needs LangChain 1.x agents: pip install 'veil-langchain[agents]'"
    ) from error

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, SystemMessage, ToolMessage, convert_to_messages
from langchain_core.runnables import RunnableConfig

from veil import ConfigError, Session, Veil
from veil_langchain._agent_parts import AgentAnonymizer, ScopedChatModel, map_structured
from veil_langchain._scope import run_session, scope_from_config
from veil_langchain._values import Anonymizer, Restorer

StateMode = Literal["restored", "anonymized"]
ScopeOption = str | Callable[[RunnableConfig], str | None] | None
TenantOption = str | Callable[[RunnableConfig], str] | None

THREAD_PREFIX = "thread"


# -- the middleware ----------------------------------------------------------------------------


class VeilMiddleware(AgentMiddleware[AgentState[Any], Any, Any]):
    """Reversible anonymization for `create_agent`: the model sees tokens, tools and users values.

    Put it last in `middleware=[...]` (innermost): it then wraps whichever model the other
    middleware chose, and they see the conversation with its values."""

    def __init__(
        self,
        *,
        veil: Veil | None = None,
        scope: ScopeOption = None,
        state: StateMode = "restored",
        tenant: TenantOption = None,
        subject: str | None = None,
        lenient: bool = False,
        allow_binary: bool = False,
    ) -> None:
        """`veil`: engine, vault and keys (share one per application; `Veil()` keeps mappings in
        memory). `scope`: a prefix for the per-thread scope (`"<scope>:<thread_id>"`), or a callable
        given the run's config that returns the scope (None: a mapping per model call). `state`:
        "restored" (the graph state, hence the checkpointer, holds values) or "anonymized" (it holds
        tokens; `restore()` gives the values back). `tenant`: the veil tenant (keys and vault rows of
        its own), or a callable given the run's config that returns it (one agent serving several
        tenants); None: the Veil's default. `subject`: the data subject the values belong to (for
        erasure on request). `lenient`: a token the scope does not know stays as written instead of
        raising. `allow_binary`: forward image, audio and file blocks unchecked."""
        super().__init__()
        if state not in ("restored", "anonymized"):
            raise ConfigError(f"state must be 'restored' or 'anonymized', got {state!r}")
        if isinstance(scope, str) and not scope:
            raise ConfigError("scope must be a non-empty string, a callable or None")
        self.veil = veil if veil is not None else Veil()
        self.scope = scope
        self.state = state
        self.tenant = tenant
        self.subject = subject
        self.lenient = lenient
        self.allow_binary = allow_binary

    # -- scopes --------------------------------------------------------------------------------

    def scope_for(self, config: RunnableConfig | None) -> str | None:
        """The scope a run with this config uses (None: a mapping per model call)."""
        explicit = scope_from_config(config)
        if explicit is not None:
            return explicit
        if callable(self.scope):
            chosen = self.scope(config or {})
            if chosen is not None and (not isinstance(chosen, str) or not chosen):
                raise ConfigError("the scope callable must return a non-empty string or None")
            return chosen
        configurable = (config or {}).get("configurable") or {}
        thread_id = configurable.get("thread_id") if isinstance(configurable, Mapping) else None
        if thread_id is None or thread_id == "":
            return None
        return f"{self.scope or THREAD_PREFIX}:{thread_id}"

    def tenant_for(self, config: RunnableConfig | None) -> str | None:
        """The tenant a run with this config uses (None: the Veil's default)."""
        if not callable(self.tenant):
            return self.tenant
        tenant = self.tenant(config or {})
        if not isinstance(tenant, str) or not tenant:
            raise ConfigError("the tenant callable must return a non-empty string")
        return tenant

    def _thread_session(self, config: RunnableConfig) -> Session:
        scope = self.scope_for(config)
        if scope is None:
            raise ConfigError("this config names no thread: give config={'configurable': {'thread_id': ...}}")
        return self.veil.session(scope, tenant=self.tenant_for(config), subject=self.subject)

    def erase(self, config: RunnableConfig) -> int:
        """Erase a thread's mapping (the tokens in its persisted state can no longer be restored)."""
        session = self._thread_session(config)
        return self.veil.erase_scope(session.scope, tenant=session.tenant)

    def anonymize_input(self, value: Any, config: RunnableConfig) -> Any:
        """An agent input (`{"messages": [...]}`, a list of messages) anonymized in the thread's
        scope, for the "anonymized" state mode: LangGraph checkpoints a run's input before any
        middleware runs, so an input given as it is stays in the thread's checkpoint history
        (`before_model` replaces it in the current state only)."""
        anonymizer = AgentAnonymizer(self._thread_session(config), allow_binary=self.allow_binary, keep_tokens=False)
        if isinstance(value, Mapping) and "messages" in value:
            return {**value, "messages": anonymizer.messages(convert_to_messages(value["messages"]))}
        if isinstance(value, list | tuple):
            return anonymizer.messages(convert_to_messages(value))
        raise ConfigError("give the agent's input: a dict with 'messages', or a list of messages")

    def restore(self, value: Any, config: RunnableConfig) -> Any:
        """A value of a thread's state (the state, messages, a structured response, text) with its
        tokens replaced by the values: for the "anonymized" state mode."""
        restorer = Restorer(self._thread_session(config), lenient=self.lenient)
        return self._restore_value(restorer, value)

    def _restore_value(self, restorer: Restorer, value: Any) -> Any:
        if isinstance(value, BaseMessage):
            return restorer.message(value)
        if isinstance(value, Mapping):
            return {key: self._restore_value(restorer, item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._restore_value(restorer, item) for item in value]
        return map_structured(value, restorer.text)

    def _session(self, config: RunnableConfig | None, hook: str) -> AbstractContextManager[Session]:
        """The thread's session, or one on a fresh scope erased when the block ends (the model
        shares this session object, so everything the call tokenized is erased with it)."""
        scope = self.scope_for(config)
        if scope is None and self.state == "anonymized":
            raise ConfigError(
                f"VeilMiddleware(state='anonymized') keeps tokens in the graph state, so {hook} needs the "
                "thread's scope: run the agent with config={'configurable': {'thread_id': ...}} (and a "
                "checkpointer), or give scope= a callable"
            )
        return run_session(self.veil, scope, tenant=self.tenant_for(config), subject=self.subject)

    def _anonymizer(self, session: Session) -> AgentAnonymizer:
        # In the anonymized state mode the state's tokens are the scope's; in the restored mode a
        # token-shaped string in the state was typed by someone and is a literal.
        return AgentAnonymizer(session, allow_binary=self.allow_binary, keep_tokens=self.state == "anonymized")

    # -- model calls ---------------------------------------------------------------------------

    def _prepare(self, request: ModelRequest[Any], session: Session) -> tuple[ModelRequest[Any], ScopedChatModel]:
        anonymizer = self._anonymizer(session)
        model = ScopedChatModel.around(request.model, session, lenient=self.lenient, allow_binary=self.allow_binary)
        system = anonymizer.message(request.system_message) if request.system_message is not None else None
        messages = anonymizer.messages(request.messages)
        model.vouch_for([*messages, *([system] if system is not None else [])])
        prepared = request.override(
            model=model,
            messages=cast("list[AnyMessage]", messages),
            system_message=cast("SystemMessage | None", system),
        )
        return prepared, model

    def _finish(self, result: Any, session: Session, model: ScopedChatModel) -> Any:
        if isinstance(result, ExtendedModelResponse):
            return dataclasses.replace(result, model_response=self._finish(result.model_response, session, model))
        if isinstance(result, AIMessage):
            return self._finish(ModelResponse(result=[result]), session, model).result[0]
        if not isinstance(result, ModelResponse):
            return result
        messages = list(result.result)
        structured = result.structured_response
        if not model.upstream_answers:
            # An inner middleware answered without the wrapped model (a cache, another model it
            # chose): what it returns was made from tokens, so it is restored here.
            restorer = Restorer(session, lenient=self.lenient)
            messages = [restorer.message(message) for message in messages]
            structured = map_structured(structured, restorer.text)
        if self.state == "anonymized":
            messages, structured = self._anonymized_result(messages, structured, session, model)
        return ModelResponse(result=messages, structured_response=structured)

    def _anonymized_result(
        self, messages: list[BaseMessage], structured: Any, session: Session, model: ScopedChatModel
    ) -> tuple[list[BaseMessage], Any]:
        """The state keeps the model's own answer (tokens as it wrote them), under the id of the
        restored message the stream showed; anything else the agent derived from the restored
        answer (a structured response, its tool message) is anonymized."""
        anonymizer = self._anonymizer(session)
        upstream = model.upstream_answers[-1] if model.upstream_answers else None
        out: list[BaseMessage] = []
        for message in messages:
            if upstream is not None and isinstance(message, AIMessage) and not out:
                out.append(upstream.model_copy(update={"id": message.id, "name": message.name}))
            else:
                out.append(anonymizer.message(message))
        return out, map_structured(structured, anonymizer.text)

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        with self._session(_current_config(), "a model call") as session:
            prepared, model = self._prepare(request, session)
            result: ModelResponse[Any] = self._finish(handler(prepared), session, model)
            return result

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        with self._session(_current_config(), "a model call") as session:
            prepared, model = self._prepare(request, session)
            result: ModelResponse[Any] = self._finish(await handler(prepared), session, model)
            return result

    # -- the state's new messages ("anonymized" mode) ------------------------------------------------

    def _anonymized_state(self, state: AgentState[Any]) -> dict[str, Any] | None:
        if self.state != "anonymized":
            return None
        with self._session(_current_config(), "the graph state") as session:
            anonymizer = self._anonymizer(session)
            changed = []
            for message in state.get("messages", []):
                copy = anonymizer.message(message)
                if copy != message:
                    if message.id is None:  # pragma: no cover - add_messages gives every message an id
                        raise ConfigError("a message without an id cannot be replaced in the graph state")
                    changed.append(copy)
        return {"messages": changed} if changed else None

    def before_model(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
        return self._anonymized_state(state)

    async def abefore_model(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
        return self._anonymized_state(state)

    # -- tool calls ----------------------------------------------------------------------------------

    def _tool_request(self, request: ToolCallRequest, session: Session) -> ToolCallRequest:
        call = request.tool_call
        restored = Restorer(session, lenient=self.lenient).json(call["args"])
        return request.override(tool_call={**call, "args": restored})

    def _tool_result(self, result: ToolMessage | Command[Any], session: Session) -> ToolMessage | Command[Any]:
        anonymizer = Anonymizer(session, allow_binary=self.allow_binary)
        if isinstance(result, ToolMessage):
            return _anonymized_tool_message(anonymizer, result)
        update = result.update
        if isinstance(update, Mapping) and isinstance(update.get("messages"), list):
            messages = [
                _anonymized_tool_message(anonymizer, item) if isinstance(item, ToolMessage)
                else anonymizer.message(item) if isinstance(item, BaseMessage) else anonymizer.value(item)
                for item in update["messages"]
            ]  # fmt: skip
            return dataclasses.replace(result, update={**update, "messages": messages})
        return result

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        # Restored mode: the state's tool calls already hold values (the model's answer was
        # restored), and results are anonymized with the rest of the history at the next model call.
        if self.state != "anonymized":
            return handler(request)
        with self._session(request.runtime.config, "a tool call") as session:
            return self._tool_result(handler(self._tool_request(request, session)), session)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        if self.state != "anonymized":
            return await handler(request)
        with self._session(request.runtime.config, "a tool call") as session:
            return self._tool_result(await handler(self._tool_request(request, session)), session)


def _anonymized_tool_message(anonymizer: Anonymizer, message: ToolMessage) -> ToolMessage:
    """A tool's result with tokens; its `artifact` (kept for the application, never sent to the
    model) too when it is text or JSON, since the checkpointer stores it."""
    copy = anonymizer.message(message)
    assert isinstance(copy, ToolMessage)
    artifact = message.artifact
    if isinstance(artifact, str | Mapping | list | tuple):
        copy = copy.model_copy(update={"artifact": anonymizer.value(artifact)})
    return copy


def _current_config() -> RunnableConfig | None:
    """The config of the graph node this hook runs in (thread id, `veil_scope`)."""
    try:
        return get_config()
    except RuntimeError:
        return None


__all__ = ["StateMode", "VeilMiddleware"]
