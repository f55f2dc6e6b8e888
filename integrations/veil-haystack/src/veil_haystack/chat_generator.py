"""VeilChatGenerator: any Haystack chat generator, with personal data kept away from its model.

    messages ─► anonymize (text, tool calls, tool results) ─► wrapped generator ─► restore ─► replies
                                                                  │ streamed chunks
                                                                  └─► restore, block by block ─► your callback

One Session per run covers both directions, so the reply is restored against exactly the tokens
the model was given. Tools run with the real values (the replies' tool-call arguments are
restored), and their results are anonymized again on the next call, which makes the wrapper fit
for `Agent(chat_generator=VeilChatGenerator(generator=...))`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from haystack import component, default_from_dict, default_to_dict
from haystack.core.serialization import component_to_dict
from haystack.dataclasses import ChatMessage, StreamingCallbackT, StreamingChunk
from haystack.utils import deserialize_callable, serialize_callable
from haystack.utils.deserialization import deserialize_component_inplace

from veil import ConfigError
from veil.session import Session
from veil_haystack._base import VeilComponent, with_config
from veil_haystack._messages import anonymize_messages, restore_messages
from veil_haystack._streaming import ChunkRestorer
from veil_haystack.config import VeilConfig


def _as_messages(messages: list[ChatMessage] | str) -> list[ChatMessage]:
    return [ChatMessage.from_user(messages)] if isinstance(messages, str) else list(messages)


@component
class VeilChatGenerator(VeilComponent):
    """
    Wraps a chat generator: anonymizes what it is sent, restores what it answers, streamed or not.

    The wrapped generator (and its model) sees tokens such as `{{EMAIL_1}}` in the messages, tool-call
    arguments and tool results; the replies and the chunks given to `streaming_callback` come back
    with the values. Fails closed: if anonymization fails, the wrapped generator is not called.

    ```python
    from haystack.components.generators.chat import OpenAIChatGenerator

    llm = VeilChatGenerator(generator=OpenAIChatGenerator(), config=VeilConfig(path=".veil"))
    llm.run([ChatMessage.from_user("Write to marie@exemple.qc.ca")], scope="conversation-42")
    ```

    Set the streaming callback on this component (or pass it to `run`), not on the wrapped generator:
    a callback given to the wrapped generator sees tokens.
    """

    def __init__(
        self,
        generator: Any,
        *,
        config: VeilConfig | None = None,
        scope: str | None = None,
        lenient: bool = False,
        forward_media: bool = False,
        streaming_callback: StreamingCallbackT | None = None,
    ) -> None:
        """
        :param generator: Any chat generator component (`run(messages, ...)` returning `replies`).
        :param config: Where the vault and keys are, the tenant and the policy. Default: in process memory.
        :param scope: The conversation's scope, so that a value keeps its token from one turn to the next;
            the `scope` input overrides it. With neither, each run gets a fresh scope.
        :param lenient: Keep tokens the scope does not know as written instead of raising `veil.TokenNotFound`.
        :param forward_media: Send images and files in messages unchecked (by default they are refused).
        :param streaming_callback: Called with each restored `StreamingChunk`.
        """
        if not callable(getattr(generator, "run", None)):
            raise ConfigError("VeilChatGenerator(generator=...) needs a chat generator component (with a run method)")
        self._init_veil(config, scope)
        self.generator = generator
        self.lenient = lenient
        self.forward_media = forward_media
        self.streaming_callback = streaming_callback
        parameters = inspect.signature(generator.run).parameters
        self._generator_parameters = set(parameters)
        self._generator_takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())

    def to_dict(self) -> dict[str, Any]:
        """Serialize the component, with the wrapped generator and the settings (secrets by env var name)."""
        callback = serialize_callable(self.streaming_callback) if self.streaming_callback is not None else None
        return default_to_dict(
            self,
            generator=component_to_dict(self.generator, name="generator"),
            config=self.config,
            scope=self.scope,
            lenient=self.lenient,
            forward_media=self.forward_media,
            streaming_callback=callback,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VeilChatGenerator:
        """Rebuild the component, and the generator it wraps, from `to_dict()` output."""
        data = with_config(data)  # a copy: the caller's dict stays as it was
        init_parameters = data["init_parameters"]
        deserialize_component_inplace(init_parameters, key="generator")
        if init_parameters.get("streaming_callback"):
            init_parameters["streaming_callback"] = deserialize_callable(init_parameters["streaming_callback"])
        return default_from_dict(cls, data)

    def warm_up(self) -> None:
        """Build the config's Veil and warm up the wrapped generator."""
        self._ensure_veil()
        if hasattr(self.generator, "warm_up"):
            self.generator.warm_up()

    async def warm_up_async(self) -> None:
        """Build the config's Veil and warm up the wrapped generator on the serving event loop."""
        self._ensure_veil()
        if hasattr(self.generator, "warm_up_async"):
            await self.generator.warm_up_async()
        elif hasattr(self.generator, "warm_up"):
            self.generator.warm_up()

    def close(self) -> None:
        """Release the wrapped generator's resources."""
        if hasattr(self.generator, "close"):
            self.generator.close()

    async def close_async(self) -> None:
        """Release the wrapped generator's async resources."""
        if hasattr(self.generator, "close_async"):
            await self.generator.close_async()
        elif hasattr(self.generator, "close"):
            self.generator.close()

    @contextmanager
    def _run_session(self, scope: str | None) -> Iterator[Session]:
        """The run's session. A scope invented for this run only is erased when the run ends: its
        replies are restored by then, and no mapping is kept that nothing can ask for again."""
        session = self._session(scope, fresh=True)
        try:
            yield session
        finally:
            if (scope or self.scope) is None:
                self._ensure_veil().erase_scope(session.scope, tenant=session.tenant)

    def _inputs(self, messages: list[ChatMessage], callback: Any, options: dict[str, Any]) -> dict[str, Any]:
        inputs: dict[str, Any] = {"messages": messages}
        for name, value in {"streaming_callback": callback, **options}.items():
            if value is None:
                continue
            if name not in self._generator_parameters and not self._generator_takes_any:
                raise ConfigError(f"the wrapped {type(self.generator).__name__} does not take {name!r}")
            inputs[name] = value
        return inputs

    @component.output_types(replies=list[ChatMessage])
    def run(
        self,
        messages: list[ChatMessage] | str,
        streaming_callback: StreamingCallbackT | None = None,
        generation_kwargs: dict[str, Any] | None = None,
        *,
        tools: Any = None,
        tools_strict: bool | None = None,
        scope: str | None = None,
    ) -> dict[str, list[ChatMessage]]:
        """
        Anonymize the messages, run the wrapped generator, restore its replies.

        :param messages: The conversation (or a single user text).
        :param streaming_callback: Called with each restored chunk; overrides the component's.
        :param generation_kwargs: Passed to the wrapped generator.
        :param tools: Passed to the wrapped generator (tool definitions are not personal data).
        :param tools_strict: Passed to the wrapped generator.
        :param scope: The scope of the tokens; overrides the component's.
        :returns: `replies`, restored.
        """
        callback = streaming_callback or self.streaming_callback
        if callback is not None and inspect.iscoroutinefunction(callback):
            raise ConfigError("run() takes a synchronous streaming_callback; use run_async() for a coroutine")
        self.warm_up()
        with self._run_session(scope) as session:
            anonymized, _ = anonymize_messages(session, _as_messages(messages), forward_media=self.forward_media)
            chunks = ChunkRestorer(session, lenient=self.lenient) if callback is not None else None
            relay = None
            if chunks is not None and callback is not None:
                user_callback = callback

                def relay(chunk: StreamingChunk) -> None:
                    for restored in chunks.process(chunk):
                        user_callback(restored)

            options = {"generation_kwargs": generation_kwargs, "tools": tools, "tools_strict": tools_strict}
            result = self.generator.run(**self._inputs(anonymized, relay, options))
            if chunks is not None and callback is not None:
                for restored in chunks.finish():
                    callback(restored)
            return {"replies": restore_messages(session, result.get("replies", []), lenient=self.lenient)}

    @component.output_types(replies=list[ChatMessage])
    async def run_async(
        self,
        messages: list[ChatMessage] | str,
        streaming_callback: StreamingCallbackT | None = None,
        generation_kwargs: dict[str, Any] | None = None,
        *,
        tools: Any = None,
        tools_strict: bool | None = None,
        scope: str | None = None,
    ) -> dict[str, list[ChatMessage]]:
        """
        As `run()`, awaiting the wrapped generator's `run_async` (or running its `run` in a thread).

        The streaming callback may be a coroutine function or a plain function.
        """
        callback = streaming_callback or self.streaming_callback
        await self.warm_up_async()
        with self._run_session(scope) as session:
            anonymized, _ = anonymize_messages(session, _as_messages(messages), forward_media=self.forward_media)
            chunks = ChunkRestorer(session, lenient=self.lenient) if callback is not None else None
            options = {"generation_kwargs": generation_kwargs, "tools": tools, "tools_strict": tools_strict}
            generator_async = getattr(self.generator, "run_async", None)
            relay: Any = None
            if chunks is not None and callback is not None:
                user_callback = callback
                if callable(generator_async):

                    async def relay(chunk: StreamingChunk) -> None:
                        for restored in chunks.process(chunk):
                            result = user_callback(restored)
                            if inspect.isawaitable(result):
                                await result

                else:
                    loop = asyncio.get_running_loop()

                    def relay(chunk: StreamingChunk) -> None:  # runs in the generator's thread
                        for restored in chunks.process(chunk):
                            result = user_callback(restored)
                            if inspect.isawaitable(result):
                                asyncio.run_coroutine_threadsafe(_awaited(result), loop).result()

            inputs = self._inputs(anonymized, relay, options)
            if callable(generator_async):
                result = await generator_async(**inputs)
            else:
                result = await asyncio.to_thread(self.generator.run, **inputs)
            if chunks is not None and callback is not None:
                for restored in chunks.finish():
                    awaitable = callback(restored)
                    if inspect.isawaitable(awaitable):
                        await awaitable
            return {"replies": restore_messages(session, result.get("replies", []), lenient=self.lenient)}


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
