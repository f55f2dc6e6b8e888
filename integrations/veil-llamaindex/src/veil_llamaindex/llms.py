"""VeilLLM: any LlamaIndex LLM behind veil — prompts and chat messages anonymized on the way to
the model, answers restored on the way back, streamed answers restored chunk by chunk.

    llm = VeilLLM(llm=OpenAI(model="gpt-4o-mini"), veil=Veil.open(".veil"), scope="conversation-42")
    llm.chat([ChatMessage(role="user", content="Write to marie@exemple.qc.ca")]).message.content

Each call opens its own `veil.Session` on the wrapper's scope: calls share no mutable state, so
one VeilLLM serves threads and tasks at once, and `for_scope()` gives a copy bound to another
conversation or collection. Tokens stay stable across calls because the vault finds them by
blind index. When the wrapped LLM is a `FunctionCallingLLM`, so is the wrapper: tools are
prepared by the wrapped LLM, tool-call arguments in its answer are restored before any tool runs
(tool selection parses the restored answer), and tool results go back to the model anonymized,
like every other message.

What the wrapped LLM's own instrumentation events and callbacks see is the anonymized exchange;
`raw` on a response stays the provider's (anonymized) object.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    TextBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection

from veil import ConfigError, Session, Veil
from veil.entities import LanguageOption
from veil_llamaindex._messages import anonymize_messages, restore_data, restore_message

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

# Prompt handling configured on the wrapped LLM applies to the wrapper too (LLM.predict reads it).
_PROMPT_SETTINGS = (
    "system_prompt",
    "messages_to_prompt",
    "completion_to_prompt",
    "output_parser",
    "pydantic_program_mode",
    "query_wrapper_prompt",
)


class VeilLLM(FunctionCallingLLM):
    """Wraps an LLM: anonymize every prompt and message, restore every answer."""

    llm: LLM = Field(description="The wrapped LLM; it only ever sees anonymized text.")
    scope: str = Field(description="veil scope: a conversation, or the collection a RAG pipeline reads.")
    tenant: str | None = Field(default=None, description="veil tenant (the Veil's default when None).")
    language: LanguageOption | None = Field(default=None, description="Language for detection (engine default).")
    keep_tokens: bool = Field(
        default=True,
        description="Tokens of the scope already in a prompt (retrieved anonymized nodes) stay as they are.",
    )
    lenient_restore: bool = Field(
        default=False, description="Leave unknown tokens as written instead of raising TokenNotFound."
    )
    allow_media: bool = Field(
        default=False, description="Forward image/audio/video/document blocks unscanned (else they raise)."
    )

    _veil: Veil = PrivateAttr()

    def __init__(self, *, llm: LLM, veil: Veil | None = None, scope: str, **kwargs: Any) -> None:
        if not scope:
            raise ConfigError("VeilLLM needs a scope: a conversation or a collection name")
        for name in _PROMPT_SETTINGS:
            kwargs.setdefault(name, getattr(llm, name, None))
        if kwargs.get("messages_to_prompt") is None:
            kwargs.pop("messages_to_prompt", None)
        if kwargs.get("completion_to_prompt") is None:
            kwargs.pop("completion_to_prompt", None)
        if kwargs.get("pydantic_program_mode") is None:
            kwargs.pop("pydantic_program_mode", None)
        super().__init__(llm=llm, scope=scope, **kwargs)
        self._veil = veil if veil is not None else Veil()

    @classmethod
    def class_name(cls) -> str:
        return "VeilLLM"

    @property
    def veil(self) -> Veil:
        return self._veil

    def for_scope(self, scope: str) -> VeilLLM:
        """A copy of this wrapper bound to another scope (same LLM, same Veil)."""
        if not scope:
            raise ConfigError("for_scope needs a non-empty scope")
        return self.model_copy(update={"scope": scope})

    @property
    def metadata(self) -> LLMMetadata:
        metadata = self.llm.metadata
        if metadata.is_function_calling_model and not isinstance(self.llm, FunctionCallingLLM):
            return metadata.model_copy(update={"is_function_calling_model": False})
        return metadata

    # -- the two directions ----------------------------------------------------------------

    def session(self) -> Session:
        """A new Session on this wrapper's scope: one per call, never shared."""
        return self._veil.session(self.scope, tenant=self.tenant)

    def _anonymize(self, session: Session, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        return anonymize_messages(
            session, messages, language=self.language, keep_tokens=self.keep_tokens, allow_media=self.allow_media
        )

    def _anonymize_prompt(self, session: Session, prompt: str) -> str:
        return str(session.anonymize(prompt, language=self.language, keep_tokens=self.keep_tokens).value)

    def _restore_chat(self, session: Session, response: ChatResponse) -> ChatResponse:
        message = restore_message(session, response.message, lenient=self.lenient_restore)
        delta = session.restore(response.delta, lenient=self.lenient_restore) if response.delta else response.delta
        extra = restore_data(session, response.additional_kwargs, lenient=True)
        return response.model_copy(update={"message": message, "delta": delta, "additional_kwargs": extra})

    def _restore_completion(self, session: Session, response: CompletionResponse) -> CompletionResponse:
        text = session.restore(response.text, lenient=self.lenient_restore)
        delta = session.restore(response.delta, lenient=self.lenient_restore) if response.delta else response.delta
        extra = restore_data(session, response.additional_kwargs, lenient=True)
        return response.model_copy(update={"text": text, "delta": delta, "additional_kwargs": extra})

    # -- chat and complete -----------------------------------------------------------------

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        session = self.session()
        response = self.llm.chat(self._anonymize(session, messages), **kwargs)
        return self._restore_chat(session, response)

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        session = self.session()
        response = await self.llm.achat(self._anonymize(session, messages), **kwargs)
        return self._restore_chat(session, response)

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        session = self.session()
        response = self.llm.complete(self._anonymize_prompt(session, prompt), formatted=formatted, **kwargs)
        return self._restore_completion(session, response)

    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        session = self.session()
        response = await self.llm.acomplete(self._anonymize_prompt(session, prompt), formatted=formatted, **kwargs)
        return self._restore_completion(session, response)

    # -- streaming -------------------------------------------------------------------------

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        session = self.session()
        upstream = self.llm.stream_chat(self._anonymize(session, messages), **kwargs)
        stream = _ChatStream(self, session)

        def generate() -> Generator[ChatResponse, None, None]:
            for response in upstream:
                yield stream.feed(response)
            last = stream.flush()
            if last is not None:
                yield last

        return generate()

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        session = self.session()
        upstream = await self.llm.astream_chat(self._anonymize(session, messages), **kwargs)
        stream = _ChatStream(self, session)

        async def generate() -> AsyncGenerator[ChatResponse, None]:
            async for response in upstream:
                yield stream.feed(response)
            last = stream.flush()
            if last is not None:
                yield last

        return generate()

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        session = self.session()
        upstream = self.llm.stream_complete(self._anonymize_prompt(session, prompt), formatted=formatted, **kwargs)
        stream = _CompletionStream(self, session)

        def generate() -> Generator[CompletionResponse, None, None]:
            for response in upstream:
                yield stream.feed(response)
            last = stream.flush()
            if last is not None:
                yield last

        return generate()

    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        session = self.session()
        upstream = await self.llm.astream_complete(
            self._anonymize_prompt(session, prompt), formatted=formatted, **kwargs
        )
        stream = _CompletionStream(self, session)

        async def generate() -> AsyncGenerator[CompletionResponse, None]:
            async for response in upstream:
                yield stream.feed(response)
            last = stream.flush()
            if last is not None:
                yield last

        return generate()

    # -- function calling: the wrapped LLM prepares and parses, the wrapper anonymizes and restores

    def _function_calling_llm(self) -> FunctionCallingLLM:
        if not isinstance(self.llm, FunctionCallingLLM) or not self.llm.metadata.is_function_calling_model:
            raise ConfigError(
                f"the wrapped {type(self.llm).__name__} does not support function calling; "
                "use a ReAct agent, or wrap a FunctionCallingLLM"
            )
        return self.llm

    def _prepare_chat_with_tools(  # noqa: PLR0917 - LlamaIndex's signature
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        # The request holds the raw messages; chat() anonymizes them when chat_with_tools sends it.
        return self._function_calling_llm()._prepare_chat_with_tools_compat(
            tools,
            user_msg=user_msg,
            chat_history=chat_history,
            verbose=verbose,
            allow_parallel_tool_calls=allow_parallel_tool_calls,
            tool_required=tool_required,
            **kwargs,
        )

    def _validate_chat_with_tools_response(
        self, response: ChatResponse, tools: Sequence[BaseTool], allow_parallel_tool_calls: bool = False, **kwargs: Any
    ) -> ChatResponse:
        return self._function_calling_llm()._validate_chat_with_tools_response(
            response, tools, allow_parallel_tool_calls=allow_parallel_tool_calls, **kwargs
        )

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        # `response` is already restored: the selections carry the real values for the tools.
        return self._function_calling_llm().get_tool_calls_from_response(
            response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
        )


class _ChatStream:
    """Restores a stream of ChatResponses: the text through the Session's streaming restorer (a
    token cut across chunks is held back, never shown half-restored), the tool calls and extras
    of each chunk's message (cumulative, as LlamaIndex streams them) restored whole."""

    def __init__(self, owner: VeilLLM, session: Session) -> None:
        self._owner = owner
        self._session = session
        self._restorer = session.stream_restorer(lenient=owner.lenient_restore)
        self._raw_text = ""
        self._text = ""
        self._last: ChatResponse | None = None

    def _delta(self, response: ChatResponse) -> str:
        if response.delta is not None:
            self._raw_text += response.delta
            return response.delta
        content = response.message.content or ""  # a provider that streams the cumulative text only
        delta = content[len(self._raw_text) :] if content.startswith(self._raw_text) else ""
        self._raw_text += delta
        return delta

    def _message(self, response: ChatResponse) -> ChatMessage:
        source = response.message
        others = [block for block in source.blocks if not isinstance(block, TextBlock)]
        has_text = bool(self._text) or len(others) < len(source.blocks)
        text_blocks = [TextBlock(text=self._text)] if has_text else []
        if not others and not source.additional_kwargs:  # the common case: text only, nothing else to restore
            return ChatMessage(role=source.role, blocks=text_blocks)
        # Tool calls and extras arrive cumulative and possibly cut mid-token: restored leniently
        # at each chunk, whole.
        restored = restore_message(self._session, source.model_copy(update={"blocks": others}), lenient=True)
        return restored.model_copy(update={"blocks": [*text_blocks, *restored.blocks]})

    def feed(self, response: ChatResponse) -> ChatResponse:
        shown = self._restorer.feed(self._delta(response))
        self._text += shown
        self._last = response
        return ChatResponse(
            message=self._message(response),
            raw=response.raw,
            delta=shown,
            logprobs=response.logprobs,
            additional_kwargs=restore_data(self._session, response.additional_kwargs, lenient=True),
        )

    def flush(self) -> ChatResponse | None:
        rest = self._restorer.flush()
        if not rest or self._last is None:
            return None
        self._text += rest
        return ChatResponse(message=self._message(self._last), delta=rest, raw=self._last.raw)


class _CompletionStream:
    """Restores a stream of CompletionResponses (see _ChatStream)."""

    def __init__(self, owner: VeilLLM, session: Session) -> None:
        self._session = session
        self._restorer = session.stream_restorer(lenient=owner.lenient_restore)
        self._raw_text = ""
        self._text = ""
        self._last: CompletionResponse | None = None

    def feed(self, response: CompletionResponse) -> CompletionResponse:
        if response.delta is not None:
            delta = response.delta
        else:
            delta = response.text[len(self._raw_text) :] if response.text.startswith(self._raw_text) else ""
        self._raw_text += delta
        shown = self._restorer.feed(delta)
        self._text += shown
        self._last = response
        extra = restore_data(self._session, response.additional_kwargs, lenient=True)
        return response.model_copy(update={"text": self._text, "delta": shown, "additional_kwargs": extra})

    def flush(self) -> CompletionResponse | None:
        rest = self._restorer.flush()
        if not rest or self._last is None:
            return None
        self._text += rest
        return CompletionResponse(text=self._text, delta=rest, raw=self._last.raw)
