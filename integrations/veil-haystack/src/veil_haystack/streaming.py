"""RestoringCallback: stream a plain generator's answer restored, between an anonymizer and a restorer.

In a RAG query pipeline the prompt already holds the collection's tokens, so the chat generator
in the middle is a plain one, and its streaming callback would show `{{EMAIL_1}}`. Wrap the
callback: each chunk is restored in the collection's scope, with the same guarantees as
VeilChatGenerator's stream (a token cut across chunks is never shown half-restored).

    llm = OpenAIChatGenerator(streaming_callback=RestoringCallback(print_streaming_chunk, config=config, scope="kb"))
"""

from __future__ import annotations

from collections.abc import Callable

from haystack.dataclasses import StreamingChunk

from veil import ConfigError
from veil.session import Session
from veil_haystack._streaming import ChunkRestorer
from veil_haystack.config import VeilConfig


class RestoringCallback:
    """A streaming callback that restores each chunk in `scope` before passing it to `callback`.

    A stream ends at the chunk that carries a `finish_reason`, where the held-back tails are sent;
    for a generator that sends none, call `finish()` after the run. One object serves run after
    run of one generator (not concurrent runs: give each its own).
    """

    def __init__(
        self,
        callback: Callable[[StreamingChunk], None],
        *,
        scope: str,
        config: VeilConfig | None = None,
        lenient: bool = False,
    ) -> None:
        """
        :param callback: The synchronous callback that shows the restored chunks.
        :param scope: The scope whose tokens the stream holds (the collection's, for RAG).
        :param config: The settings of the anonymizer that made the tokens.
        :param lenient: Keep tokens the scope does not know as written instead of raising `veil.TokenNotFound`.
        """
        if not scope:
            raise ConfigError("RestoringCallback needs the scope whose tokens the stream holds")
        self.callback = callback
        self.scope = scope
        self.config = config if config is not None else VeilConfig()
        self.lenient = lenient
        self._chunks: ChunkRestorer | None = None

    def _restorer(self) -> ChunkRestorer:
        if self._chunks is None:
            session: Session = self.config.veil().session(self.scope)
            self._chunks = ChunkRestorer(session, lenient=self.lenient)
        return self._chunks

    def __call__(self, chunk: StreamingChunk) -> None:
        for restored in self._restorer().process(chunk):
            self.callback(restored)
        if chunk.finish_reason is not None:
            self._chunks = None  # the next stream starts afresh

    def finish(self) -> None:
        """Send what is still held back (for generators that never send a finishing chunk)."""
        if self._chunks is not None:
            for restored in self._chunks.finish():
                self.callback(restored)
            self._chunks = None
