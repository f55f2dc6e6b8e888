"""VeilChatModel: any LangChain chat model, with personal data replaced before it reaches the model.

    from veil import Session, Veil
    from veil_langchain import VeilChatModel

    llm = VeilChatModel(model=ChatOpenAI(model="gpt-4o-mini"), veil=Veil())
    llm.invoke("Écrivez à marie@exemple.qc.ca")      # the provider receives "Écrivez à {{EMAIL_1}}"

Every call anonymizes the outgoing messages (text, content blocks, tool-call arguments, tool
results), calls the wrapped model with the anonymized copies, and restores its answer: text,
streamed chunks (a token cut between two chunks is held back, never shown half restored), tool-call
arguments (so a tool receives the real values) and structured outputs. Usage and response metadata
pass through. If anonymization fails, the call raises and the wrapped model is never called.

Scopes: see `veil_langchain._scope`. Without a `scope`, each call has a mapping of its own, erased
when the call ends; give `scope=` (or `config={"configurable": {"veil_scope": ...}}` per call) to
keep one mapping for a conversation.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, ClassVar

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.language_models.chat_models import agenerate_from_stream, generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import add_ai_message_chunks
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.messages.utils import message_chunk_to_message
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig, ensure_config
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field

from veil import Session, Veil
from veil_langchain._scope import SCOPE_KEY, pop_scope, run_session, scope_from_config
from veil_langchain._values import Anonymizer, MessageStreamRestorer, Restorer


class VeilChatModel(BaseChatModel):
    """A chat model that anonymizes what it sends to `model` and restores what comes back."""

    model: BaseChatModel
    """The wrapped chat model: it only ever sees tokens."""
    veil: Veil = Field(default_factory=Veil)
    """Engine, vault and keys (share one per application). The default keeps mappings in memory."""
    scope: str | None = None
    """The scope of the mapping; None gives each call its own, erased when the call ends."""
    tenant: str | None = None
    subject: str | None = None
    """Data subject the values belong to (for erasure on request)."""
    lenient: bool = False
    """Keep tokens the scope does not know (made up by the model) as written instead of raising."""
    allow_binary: bool = False
    """Forward image, audio and file blocks unchecked (veil cannot look inside them)."""
    keep_tokens: bool = False
    """Tokens of the scope already in the messages (retrieved documents anonymized earlier in the
    same collection) stay as they are instead of becoming literals."""
    streaming: bool = False
    """Call the wrapped model's stream even from invoke."""
    temperature: float | None = None
    """Forwarded to the wrapped model's calls when set (usually set on the wrapped model itself)."""
    max_tokens: int | None = None
    """Forwarded to the wrapped model's calls when set."""
    stop: list[str] | None = None
    """Default stop sequences, forwarded to the wrapped model."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    keeps_upstream: ClassVar[bool] = False
    """Subclasses that set this get `_upstream_answer` called with each answer exactly as the
    wrapped model gave it (tokens, not values): the agent middleware keeps those in the graph state."""

    @property
    def _llm_type(self) -> str:
        return "veil"

    def _upstream_answer(self, message: AIMessage) -> None:
        """The wrapped model's answer before restore (only called when `keeps_upstream`)."""

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model._llm_type, "scope": self.scope, "tenant": self.tenant}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """The wrapped model's tracing parameters: it is the model that runs."""
        params = self.model._get_ls_params(stop=stop or self.stop, **kwargs)
        if isinstance(kwargs.get("model"), str):
            params["ls_model_name"] = kwargs["model"]
        params.setdefault("ls_model_name", self.model._llm_type)
        params["ls_model_type"] = "chat"
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        return params

    # -- the scope of a call -----------------------------------------------------------------

    def _scoped(self, config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        if SCOPE_KEY not in kwargs:
            scope = scope_from_config(ensure_config(config))
            if scope is not None:
                kwargs = {**kwargs, SCOPE_KEY: scope}
        return kwargs

    def invoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, *, stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:  # fmt: skip
        return super().invoke(input, config, stop=stop, **self._scoped(config, kwargs))

    async def ainvoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, *, stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:  # fmt: skip
        return await super().ainvoke(input, config, stop=stop, **self._scoped(config, kwargs))

    def stream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, *, stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:  # fmt: skip
        return super().stream(input, config, stop=stop, **self._scoped(config, kwargs))

    async def astream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, *, stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:  # fmt: skip
        async for chunk in super().astream(input, config, stop=stop, **self._scoped(config, kwargs)):
            yield chunk

    # -- calls -------------------------------------------------------------------------------

    def _call_options(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.temperature is not None:
            options["temperature"] = self.temperature
        if self.max_tokens is not None:
            options["max_tokens"] = self.max_tokens
        options.update(kwargs)
        stop = stop if stop is not None else self.stop
        if stop:
            options["stop"] = stop
        return options

    def _session(self, kwargs: dict[str, Any]) -> Any:
        return run_session(self.veil, pop_scope(kwargs) or self.scope, tenant=self.tenant, subject=self.subject)

    def _anonymizer(self, session: Session) -> Anonymizer:
        return Anonymizer(session, allow_binary=self.allow_binary, keep_tokens=self.keep_tokens)

    def _keep_upstream(self, result: Any) -> None:
        if self.keeps_upstream:
            message = result.generations[0][0].message
            if isinstance(message, AIMessage):
                self._upstream_answer(message)

    def _keep_upstream_chunks(self, received: list[AIMessageChunk]) -> None:
        if self.keeps_upstream and received:
            whole = add_ai_message_chunks(received[0], *received[1:]) if len(received) > 1 else received[0]
            message = message_chunk_to_message(whole)
            if isinstance(message, AIMessage):
                self._upstream_answer(message)

    def _restored_result(self, restorer: Restorer, result: Any) -> ChatResult:
        generations = []
        for generation in result.generations[0]:
            message = restorer.message(generation.message)
            generations.append(ChatGeneration(message=message, generation_info=generation.generation_info))
        return ChatResult(generations=generations, llm_output=result.llm_output)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return generate_from_stream(self._stream(messages, stop=stop, **kwargs))
        with self._session(kwargs) as session:
            sent = self._anonymizer(session).messages(messages)
            result = self.model.generate([sent], callbacks=[], tags=UPSTREAM_TAGS, **self._call_options(stop, kwargs))
            self._keep_upstream(result)
            return self._restored_result(Restorer(session, lenient=self.lenient), result)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return await agenerate_from_stream(self._astream(messages, stop=stop, **kwargs))
        with self._session(kwargs) as session:
            sent = self._anonymizer(session).messages(messages)
            options = self._call_options(stop, kwargs)
            result = await self.model.agenerate([sent], callbacks=[], tags=UPSTREAM_TAGS, **options)
            self._keep_upstream(result)
            return self._restored_result(Restorer(session, lenient=self.lenient), result)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # LangChain reports each chunk this yields to the caller's callbacks (on_llm_new_token).
        with self._session(kwargs) as session:
            sent = self._anonymizer(session).messages(messages)
            restorer = MessageStreamRestorer(session, lenient=self.lenient)
            ended = False
            received: list[AIMessageChunk] = []
            for streamed in self.model.stream(sent, UPSTREAM_CONFIG, **self._call_options(stop, kwargs)):
                upstream = _as_chunk(streamed)
                if self.keeps_upstream:
                    received.append(upstream)
                chunk = restorer.feed(upstream)
                ended = chunk.chunk_position == "last"
                yield ChatGenerationChunk(message=chunk)
            self._keep_upstream_chunks(received)
            if not ended:
                yield ChatGenerationChunk(message=_last(restorer.flush()))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        with self._session(kwargs) as session:
            sent = self._anonymizer(session).messages(messages)
            restorer = MessageStreamRestorer(session, lenient=self.lenient)
            ended = False
            received: list[AIMessageChunk] = []
            async for streamed in self.model.astream(sent, UPSTREAM_CONFIG, **self._call_options(stop, kwargs)):
                upstream = _as_chunk(streamed)
                if self.keeps_upstream:
                    received.append(upstream)
                chunk = restorer.feed(upstream)
                ended = chunk.chunk_position == "last"
                yield ChatGenerationChunk(message=chunk)
            self._keep_upstream_chunks(received)
            if not ended:
                yield ChatGenerationChunk(message=_last(restorer.flush()))

    # -- tools and structured output ---------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """The wrapped model formats the tools its own way; calls still go through this wrapper."""
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        bound = self.model.bind_tools(tools, **kwargs)
        if not isinstance(bound, RunnableBinding) or bound.bound is not self.model:
            raise NotImplementedError(
                f"{type(self.model).__name__}.bind_tools does not return a binding of the model; "
                "bind the tools on the wrapped model and wrap the result with RunnableVeil"
            )
        return self.bind(**bound.kwargs)

    def with_structured_output(
        self, schema: dict[str, Any] | type, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """The wrapped model's structured output (its own method: tools, JSON schema, JSON mode),
        with the input anonymized and the parsed output restored."""
        from veil_langchain.runnables import RunnableVeil  # noqa: PLC0415 - runnables imports this module

        inner = self.model.with_structured_output(schema, include_raw=include_raw, **kwargs)
        return RunnableVeil(
            runnable=inner, veil=self.veil, scope=self.scope, tenant=self.tenant, subject=self.subject,
            lenient=self.lenient, allow_binary=self.allow_binary, keep_tokens=self.keep_tokens,
        )  # fmt: skip


def _as_chunk(message: BaseMessage) -> AIMessageChunk:
    """A streamed message as a chunk: a model that cannot stream yields its whole answer, an
    `AIMessage`, from `stream()`; it is the one and last chunk of its stream."""
    if isinstance(message, AIMessageChunk):
        return message
    if not isinstance(message, AIMessage):
        raise TypeError(f"the wrapped model streamed a {type(message).__name__}, not an AI message")
    calls = []
    for index, call in enumerate(message.tool_calls):
        args = json.dumps(call["args"], ensure_ascii=False)
        calls.append(tool_call_chunk(name=call["name"], args=args, id=call["id"], index=index))
    return AIMessageChunk(
        content=message.content, additional_kwargs=message.additional_kwargs, tool_call_chunks=calls,
        response_metadata=message.response_metadata, usage_metadata=message.usage_metadata, id=message.id,
        name=message.name, chunk_position="last",
    )  # fmt: skip


def _last(chunk: AIMessageChunk) -> AIMessageChunk:
    chunk.chunk_position = "last"
    return chunk


UPSTREAM_TAGS = ["veil:upstream", "nostream"]
UPSTREAM_CONFIG: RunnableConfig = {"callbacks": [], "tags": UPSTREAM_TAGS}
"""How the wrapped model is called: with none of the caller's callbacks (they see the wrapper's
run, with the caller's values, once: usage is not counted twice, and a streaming UI never shows
tokens), tagged so that tracers configured from the environment, which still see it, can tell it
apart ("nostream" also keeps it out of LangGraph's message stream)."""
