"""LangChain `ChatOpenAI`, LlamaIndex `OpenAILike` and Haystack `OpenAIChatGenerator` work against the
gateway unchanged but for their base URL: answers (streamed or not) and tool calls come back
restored, and the recording upstream never sees the canaries."""

from __future__ import annotations

import json

import pytest
from gateway_setup import CANARIES, CANARY_TEXT
from server_live import RecordingUpstream


def assert_no_canary(upstream: RecordingUpstream) -> None:
    seen = upstream.bodies()
    assert upstream.requests
    for name, value in CANARIES.items():
        assert value not in seen, f"the upstream saw the {name}"


# -- LangChain ---------------------------------------------------------------------------------


def test_langchain_chat_openai_invokes_streams_and_calls_tools(base_url: str, upstream: RecordingUpstream) -> None:
    from langchain_core.messages import HumanMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(model="gpt-test", base_url=base_url, api_key="sk-veil-test", max_retries=0)
    assert chat.invoke([HumanMessage(CANARY_TEXT)]).content == CANARY_TEXT
    chunks = list(chat.stream(CANARY_TEXT))
    assert "".join(str(c.content) for c in chunks) == CANARY_TEXT
    assert all("{{" not in str(c.content) for c in chunks)

    @tool
    def send_email(body: str) -> str:
        """Send an e-mail to the customer."""
        return "sent"

    called = chat.bind_tools([send_email], tool_choice="send_email").invoke(CANARY_TEXT)
    assert called.tool_calls[0]["name"] == "send_email"
    assert called.tool_calls[0]["args"] == {"body": CANARY_TEXT}
    assert_no_canary(upstream)


@pytest.mark.anyio
async def test_langchain_chat_openai_async_stream(base_url: str, upstream: RecordingUpstream) -> None:
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(model="gpt-test", base_url=base_url, api_key="sk-veil-test", max_retries=0)
    text = "".join([str(chunk.content) async for chunk in chat.astream(CANARY_TEXT)])
    assert text == CANARY_TEXT
    assert_no_canary(upstream)


def test_langchain_openai_embeddings_send_text_and_get_vectors(base_url: str, upstream: RecordingUpstream) -> None:
    from langchain_openai import OpenAIEmbeddings

    # check_embedding_ctx_length=False: send text, not tiktoken ids (token ids cannot be anonymized).
    embeddings = OpenAIEmbeddings(model="embed-test", base_url=base_url, api_key="sk-veil-test",
                                  check_embedding_ctx_length=False, max_retries=0)  # fmt: skip
    vectors = embeddings.embed_documents([CANARY_TEXT, "autre"])
    assert len(vectors) == 2 and len(vectors[0]) == 64
    assert embeddings.embed_query(CANARY_TEXT) == pytest.approx(vectors[0])
    assert_no_canary(upstream)


# -- LlamaIndex --------------------------------------------------------------------------------


def test_llamaindex_openai_like_chats_streams_completes_and_calls_tools(
    base_url: str, upstream: RecordingUpstream
) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(model="gpt-test", api_base=base_url, api_key="sk-veil-test", is_chat_model=True,
                     is_function_calling_model=True, context_window=128000, max_retries=0)  # fmt: skip
    assert llm.chat([ChatMessage(role="user", content=CANARY_TEXT)]).message.content == CANARY_TEXT
    deltas = [r.delta or "" for r in llm.stream_chat([ChatMessage(role="user", content=CANARY_TEXT)])]
    assert "".join(deltas) == CANARY_TEXT
    assert llm.complete(CANARY_TEXT).text == CANARY_TEXT

    def send_email(body: str) -> str:
        """Send an e-mail to the customer."""
        return "sent"

    response = llm.chat_with_tools([FunctionTool.from_defaults(fn=send_email)], user_msg=CANARY_TEXT)
    calls = llm.get_tool_calls_from_response(response, error_on_no_tool_call=True)
    assert calls[0].tool_name == "send_email" and calls[0].tool_kwargs == {"body": CANARY_TEXT}
    assert_no_canary(upstream)


@pytest.mark.anyio
async def test_llamaindex_openai_like_async_stream(base_url: str, upstream: RecordingUpstream) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(model="gpt-test", api_base=base_url, api_key="sk-veil-test", is_chat_model=True, max_retries=0)
    stream = await llm.astream_chat([ChatMessage(role="user", content=CANARY_TEXT)])
    assert "".join([r.delta or "" async for r in stream]) == CANARY_TEXT
    assert_no_canary(upstream)


# -- Haystack ----------------------------------------------------------------------------------


def test_haystack_openai_chat_generator_runs_streams_and_calls_tools(
    base_url: str, upstream: RecordingUpstream
) -> None:
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.dataclasses import ChatMessage, StreamingChunk
    from haystack.tools import Tool
    from haystack.utils import Secret

    generator = OpenAIChatGenerator(api_key=Secret.from_token("sk-veil-test"), model="gpt-test",
                                    api_base_url=base_url, max_retries=0)  # fmt: skip
    replies = generator.run(messages=[ChatMessage.from_user(CANARY_TEXT)])["replies"]
    assert replies[0].text == CANARY_TEXT

    pieces: list[str] = []

    def collect(chunk: StreamingChunk) -> None:
        pieces.append(chunk.content)

    streamed = generator.run(messages=[ChatMessage.from_user(CANARY_TEXT)], streaming_callback=collect)
    assert "".join(pieces) == CANARY_TEXT == streamed["replies"][0].text

    send_email = Tool(
        name="send_email", description="Send an e-mail to the customer",
        parameters={"type": "object", "properties": {"body": {"type": "string"}}, "required": ["body"]},
        function=lambda body: "sent",
    )  # fmt: skip
    called = generator.run(messages=[ChatMessage.from_user(CANARY_TEXT)], tools=[send_email])["replies"][0]
    assert called.tool_calls[0].tool_name == "send_email"
    assert called.tool_calls[0].arguments == {"body": CANARY_TEXT}
    assert json.dumps(called.tool_calls[0].arguments)  # valid JSON arguments
    assert_no_canary(upstream)
