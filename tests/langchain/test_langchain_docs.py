"""docs/langchain.md runs as written, with local stand-ins for the provider's classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_fakes import RecordingChatModel, RecordingEmbeddings

DOC = Path(__file__).resolve().parents[2] / "docs" / "langchain.md"
EMAIL = "marie.tremblay@exemple.qc.ca"


def test_every_python_block_of_the_langchain_page_runs_in_order() -> None:
    text = DOC.read_text(encoding="utf-8")
    blocks = [part.split("```", 1)[0] for part in text.split("```python")[1:]]
    assert len(blocks) >= 5
    providers: list[Any] = []

    def chat_openai(**_: Any) -> RecordingChatModel:
        providers.append(RecordingChatModel())
        return providers[-1]

    embedder = RecordingEmbeddings()
    namespace: dict[str, Any] = {"ChatOpenAI": chat_openai, "OpenAIEmbeddings": lambda: embedder}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    assert EMAIL in namespace["answer"].content
    assert "130 692 544" in namespace["summary"]
    assert all(EMAIL not in d.page_content for d in namespace["for_the_model"])
    assert any(EMAIL in d.page_content for d in namespace["for_an_admin"])
    assert EMAIL in namespace["reply"]["messages"][-1].text
    assert EMAIL not in repr(namespace["stored"]) and EMAIL in namespace["shown"]["messages"][-1].text
    for provider in providers:
        assert EMAIL not in provider.seen_text() and "130 692 544" not in provider.seen_text()
    assert not any(EMAIL in text.lower() for text in embedder.received)
