"""Property: however a model cuts its stream into chunks, the user is shown exactly the restored reply."""

from __future__ import annotations

import itertools
from typing import Any

from haystack.dataclasses import ChatMessage, StreamingChunk
from haystack_helpers import EMAIL, RULES_ONLY, SIN
from hypothesis import given, settings
from hypothesis import strategies as st
from veil_haystack import VeilChatGenerator, VeilConfig, VeilRestorer

CONFIG = VeilConfig(tenant="streaming-properties", policy=dict(RULES_ONLY))
SCOPE = "conversation-properties"
PIECES = ["Bonjour ", "{{EMAIL_1}}", " et ", "{{CA_SIN_1}}", "{", "}", "EMAIL_1", "{{ email_1 }}", "é", "\\{", " "]


class CutStream:
    """A model that streams `text` cut at the given positions."""

    def __init__(self, text: str, cuts: list[int]) -> None:
        self.text, self.cuts = text, cuts

    def run(self, messages: list[ChatMessage], streaming_callback: Any = None) -> dict[str, list[ChatMessage]]:
        bounds = [0, *sorted(set(self.cuts)), len(self.text)]
        for start, end in itertools.pairwise(bounds):
            if end > start:
                streaming_callback(StreamingChunk(content=self.text[start:end], index=0))
        streaming_callback(StreamingChunk(content="", finish_reason="stop"))
        return {"replies": [ChatMessage.from_assistant(self.text)]}


@settings(max_examples=150, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(PIECES), min_size=1, max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=120), max_size=15),
)
def test_streamed_chunks_always_join_into_the_restored_reply(pieces: list[str], cuts: list[int]) -> None:
    text = "".join(pieces)
    shown: list[StreamingChunk] = []
    llm = VeilChatGenerator(generator=CutStream(text, [c for c in cuts if c < len(text)]), config=CONFIG, lenient=True)
    reply = llm.run(f"{EMAIL}, NAS {SIN}", scope=SCOPE, streaming_callback=shown.append)["replies"][0].text
    expected = VeilRestorer(config=CONFIG, scope=SCOPE, lenient=True).run(text=text)["text"]
    assert "".join(chunk.content for chunk in shown) == expected
    assert reply == expected  # the unary reply, restored in the same run
    assert shown[-1].finish_reason == "stop"
