"""Runnables for explicit pipelines: anonymize on the way in, restore on the way out.

    chain = VeilAnonymizer(veil=veil) | prompt | llm | StrOutputParser() | VeilRestorer(veil=veil)
    chain.invoke({"question": "..."}, config={"configurable": {"veil_scope": "conversation-42"}})

    safe = RunnableVeil(runnable=prompt | llm | StrOutputParser(), veil=veil)   # one runnable, both ends
    safe.invoke({"question": "..."})

`VeilAnonymizer` and `VeilRestorer` are two ends of one mapping: they find it through the run's
scope (`config["configurable"]["veil_scope"]`, or their `scope` field), never through a global,
so concurrent runs on different scopes never see each other's values. `RunnableVeil` holds both
ends itself: without a scope, each run gets a mapping of its own, erased when the run ends.

Inputs may be text, messages, prompt values, documents, or dicts and lists of them; anything
else is refused (fail closed). Outputs of those types, and pydantic models, are restored;
streamed text and message chunks through the core's streaming restorer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import (
    ConfigurableFieldSpec,
    Runnable,
    RunnableConfig,
    RunnableSerializable,
    patch_config,
)
from langchain_core.runnables.utils import get_unique_config_specs
from pydantic import ConfigDict, Field

from veil import ConfigError, Session, Veil
from veil.restore import HoldBackStream
from veil_langchain._scope import SCOPE_KEY, SCOPE_SPEC, run_session, scope_from_config
from veil_langchain._values import Anonymizer, MessageStreamRestorer, Restorer

__all__ = ["RunnableVeil", "VeilAnonymizer", "VeilRestorer"]


class _VeilRunnable(RunnableSerializable[Any, Any]):
    veil: Veil = Field(default_factory=Veil)
    """Engine, vault and keys (share one per application)."""
    scope: str | None = None
    """The default scope; a run's `veil_scope` in its config comes first."""
    tenant: str | None = None
    subject: str | None = None
    lenient: bool = False
    """Keep unknown tokens as written instead of raising."""
    allow_binary: bool = False
    """Let image, audio and file blocks through unchecked."""
    keep_tokens: bool = False
    """Tokens of the scope already in the input (documents anonymized earlier) stay as they are."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        return [SCOPE_SPEC]

    def _required_session(self, config: RunnableConfig) -> Session:
        scope = scope_from_config(config) or self.scope
        if scope is None:
            raise ConfigError(
                f"{type(self).__name__} needs a scope shared with the other end of the chain: pass "
                f"config={{'configurable': {{'{SCOPE_KEY}': ...}}}} or scope=..."
            )
        return self.veil.session(scope, tenant=self.tenant, subject=self.subject)


def _collect(chunks: Iterator[Any]) -> Any:
    final: Any = None
    started = False
    for chunk in chunks:
        final, started = (chunk, True) if not started else (final + chunk, True)
    return final


async def _acollect(chunks: AsyncIterator[Any]) -> Any:
    final: Any = None
    started = False
    async for chunk in chunks:
        final, started = (chunk, True) if not started else (final + chunk, True)
    return final


class _OutputStream:
    """Restores a stream of outputs: text and message chunks are deltas (restored with hold-back);
    anything else (parsed partial objects) is restored whole, chunk by chunk, leniently."""

    def __init__(self, session: Session, *, lenient: bool) -> None:
        self._session = session
        self._lenient = lenient
        self._text: HoldBackStream | None = None
        self._messages: MessageStreamRestorer | None = None
        self._partials = Restorer(session, lenient=True)

    def feed(self, chunk: Any) -> Any:
        if isinstance(chunk, str):
            if self._text is None:
                self._text = self._session.stream_restorer(lenient=self._lenient)
            return self._text.feed(chunk)
        if isinstance(chunk, AIMessageChunk):
            if self._messages is None:
                self._messages = MessageStreamRestorer(self._session, lenient=self._lenient)
            return self._messages.feed(chunk)
        return self._partials.value(chunk)

    def flush(self) -> list[Any]:
        rest: list[Any] = []
        if self._text is not None and (text := self._text.flush()):
            rest.append(text)
        if self._messages is not None:
            last = self._messages.flush()
            if last.content or last.tool_call_chunks:
                rest.append(last)
        return rest


class RunnableVeil(_VeilRunnable):
    """Any runnable, with its input anonymized and its output restored, within one scope per run."""

    runnable: Runnable[Any, Any]
    """The wrapped runnable: it only ever sees tokens."""

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        return get_unique_config_specs([SCOPE_SPEC, *self.runnable.config_specs])

    def _open(self, config: RunnableConfig) -> Any:
        return run_session(self.veil, scope_from_config(config) or self.scope, tenant=self.tenant, subject=self.subject)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._invoke, input, config, **kwargs)

    def _invoke(
        self, input: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig, **kwargs: Any
    ) -> Any:
        with self._open(config) as session:
            sent = Anonymizer(session, allow_binary=self.allow_binary, keep_tokens=self.keep_tokens).value(input)
            output = self.runnable.invoke(sent, patch_config(config, callbacks=run_manager.get_child()), **kwargs)
            return Restorer(session, lenient=self.lenient).value(output)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(self._ainvoke, input, config, **kwargs)

    async def _ainvoke(
        self, input: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig, **kwargs: Any
    ) -> Any:
        with self._open(config) as session:
            sent = Anonymizer(session, allow_binary=self.allow_binary, keep_tokens=self.keep_tokens).value(input)
            output = await self.runnable.ainvoke(
                sent, patch_config(config, callbacks=run_manager.get_child()), **kwargs
            )
            return Restorer(session, lenient=self.lenient).value(output)

    def transform(self, input: Iterator[Any], config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        yield from self._transform_stream_with_config(input, self._transform, config, **kwargs)

    def _transform(
        self, chunks: Iterator[Any], run_manager: CallbackManagerForChainRun, config: RunnableConfig, **kwargs: Any
    ) -> Iterator[Any]:
        input = _collect(chunks)
        with self._open(config) as session:
            sent = Anonymizer(session, allow_binary=self.allow_binary, keep_tokens=self.keep_tokens).value(input)
            stream = _OutputStream(session, lenient=self.lenient)
            child = patch_config(config, callbacks=run_manager.get_child())
            for chunk in self.runnable.stream(sent, child, **kwargs):
                if (piece := stream.feed(chunk)) != "":
                    yield piece
            yield from stream.flush()

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        return self.transform(iter([input]), config, **kwargs)

    async def atransform(
        self, input: AsyncIterator[Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        async for chunk in self._atransform_stream_with_config(input, self._atransform, config, **kwargs):
            yield chunk

    async def _atransform(
        self, chunks: AsyncIterator[Any], run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:  # fmt: skip
        input = await _acollect(chunks)
        with self._open(config) as session:
            sent = Anonymizer(session, allow_binary=self.allow_binary, keep_tokens=self.keep_tokens).value(input)
            stream = _OutputStream(session, lenient=self.lenient)
            child = patch_config(config, callbacks=run_manager.get_child())
            async for chunk in self.runnable.astream(sent, child, **kwargs):
                if (piece := stream.feed(chunk)) != "":
                    yield piece
            for rest in stream.flush():
                yield rest

    async def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        async def single() -> AsyncIterator[Any]:
            yield input

        async for chunk in self.atransform(single(), config, **kwargs):
            yield chunk


class VeilAnonymizer(_VeilRunnable):
    """The input end: replaces personal data by the scope's tokens."""

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._invoke, input, config, **kwargs)

    def _invoke(self, input: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig) -> Any:
        return Anonymizer(
            self._required_session(config), allow_binary=self.allow_binary, keep_tokens=self.keep_tokens
        ).value(input)


class VeilRestorer(_VeilRunnable):
    """The output end: puts the scope's values back in place of tokens (text, messages, parsed outputs)."""

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._invoke, input, config, **kwargs)

    def _invoke(self, input: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig) -> Any:
        return Restorer(self._required_session(config), lenient=self.lenient).value(input)

    def transform(self, input: Iterator[Any], config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        yield from self._transform_stream_with_config(input, self._transform, config, **kwargs)

    def _transform(
        self, chunks: Iterator[Any], run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> Iterator[Any]:
        stream = _OutputStream(self._required_session(config), lenient=self.lenient)
        for chunk in chunks:
            if (piece := stream.feed(chunk)) != "":
                yield piece
        yield from stream.flush()

    async def atransform(
        self, input: AsyncIterator[Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        async for chunk in self._atransform_stream_with_config(input, self._atransform, config, **kwargs):
            yield chunk

    async def _atransform(
        self, chunks: AsyncIterator[Any], run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> AsyncIterator[Any]:
        stream = _OutputStream(self._required_session(config), lenient=self.lenient)
        async for chunk in chunks:
            if (piece := stream.feed(chunk)) != "":
                yield piece
        for rest in stream.flush():
            yield rest
