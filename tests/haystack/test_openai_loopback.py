"""VeilChatGenerator around Haystack's real OpenAIChatGenerator, against a model server on loopback.

The server is a stand-in for the upstream model only: it speaks the OpenAI wire format (JSON, or
SSE chunks with tool-call deltas, a finishing chunk, a usage chunk and `[DONE]`), records every
request body, echoes the user's last message in 3-character pieces, and — when given tools —
calls the first one with the tokens it saw. Everything else (the OpenAI client, Haystack's chunk
conversion and reply assembly, veil) is the real code.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from haystack.components.generators.chat import OpenAIChatGenerator
from haystack.dataclasses import ChatMessage, StreamingChunk
from haystack.tools import Tool
from haystack.utils import Secret
from haystack_helpers import CARD, EMAIL, PHONE, SIN, assert_no_canary
from veil_haystack import VeilChatGenerator, VeilConfig

TEXT = f"Écrivez à {EMAIL}, tél. {PHONE}, NAS {SIN}, carte {CARD}."
TOKEN = re.compile(r"\{\{[A-Z_]+_[0-9]+\}\}")


def reply_for(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    messages = body["messages"]
    last = messages[-1]
    if body.get("tools") and last["role"] != "tool":
        tokens = TOKEN.findall(json.dumps(messages, ensure_ascii=False))
        arguments = json.dumps({"to": tokens[0], "all": tokens}, ensure_ascii=False)
        name = body["tools"][0]["function"]["name"]
        return "", [{"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}]
    content = last["content"] if isinstance(last["content"], str) else last["content"][0]["text"]
    return f"Reçu : {content}", []


def sse_events(content: str, calls: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "fake"}
    yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    for start in range(0, len(content), 3):
        delta = {"content": content[start : start + 3]}
        yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    for index, call in enumerate(calls):
        head = {"index": index, "id": call["id"], "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""}}  # fmt: skip
        yield {**base, "choices": [{"index": 0, "delta": {"tool_calls": [head]}, "finish_reason": None}]}
        arguments = call["function"]["arguments"]
        for start in range(0, len(arguments), 3):
            piece = {"index": index, "function": {"arguments": arguments[start : start + 3]}}
            yield {**base, "choices": [{"index": 0, "delta": {"tool_calls": [piece]}, "finish_reason": None}]}
    reason = "tool_calls" if calls else "stop"
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}
    yield {**base, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class FakeModelHandler(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]]

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)  # type: ignore[attr-defined]
        content, calls = reply_for(body)
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for event in sse_events(content, calls):
                self.wfile.write(f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            return
        message: dict[str, Any] = {"role": "assistant", "content": content or None}
        if calls:
            message["tool_calls"] = calls
        payload = {
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }  # fmt: skip
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def model_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeModelHandler)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def openai_generator(server: ThreadingHTTPServer) -> OpenAIChatGenerator:
    return OpenAIChatGenerator(
        api_key=Secret.from_token("not-a-key"), model="fake", max_retries=0, timeout=10,
        api_base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
        http_client_kwargs={"trust_env": False},  # loopback only, whatever proxy the environment names
    )  # fmt: skip


def seen_by_model(server: ThreadingHTTPServer) -> list[str]:
    return [json.dumps(body, ensure_ascii=False) for body in server.requests]  # type: ignore[attr-defined]


def send_email(to: str, all: list[str]) -> str:
    return f"envoyé à {to}"


TOOL = Tool(
    name="send_email",
    description="Send an e-mail.",
    parameters={"type": "object", "properties": {"to": {"type": "string"}, "all": {"type": "array"}}},
    function=send_email,
)


def test_openai_generator_behind_veil_sends_tokens_and_returns_values(
    config: VeilConfig, model_server: ThreadingHTTPServer
) -> None:
    llm = VeilChatGenerator(generator=openai_generator(model_server), config=config)
    reply = llm.run([ChatMessage.from_user(TEXT)])["replies"][0]
    assert reply.text == f"Reçu : {TEXT}"
    assert_no_canary(seen_by_model(model_server))
    assert "{{EMAIL_1}}" in seen_by_model(model_server)[0]


def test_openai_stream_is_restored_chunk_by_chunk(config: VeilConfig, model_server: ThreadingHTTPServer) -> None:
    chunks: list[StreamingChunk] = []
    llm = VeilChatGenerator(generator=openai_generator(model_server), config=config)
    reply = llm.run([ChatMessage.from_user(TEXT)], streaming_callback=chunks.append)["replies"][0]
    shown = "".join(chunk.content for chunk in chunks)
    assert shown == reply.text == f"Reçu : {TEXT}"
    assert all("{" not in chunk.content and "_1" not in chunk.content for chunk in chunks)
    assert_no_canary(seen_by_model(model_server))


def test_openai_streamed_tool_call_arguments_are_restored(
    config: VeilConfig, model_server: ThreadingHTTPServer
) -> None:
    chunks: list[StreamingChunk] = []
    llm = VeilChatGenerator(generator=openai_generator(model_server), config=config)
    reply = llm.run([ChatMessage.from_user(TEXT)], tools=[TOOL], streaming_callback=chunks.append)["replies"][0]
    assert reply.tool_calls[0].arguments == {"to": EMAIL, "all": [EMAIL, PHONE, SIN, CARD]}
    streamed = "".join(delta.arguments or "" for chunk in chunks for delta in chunk.tool_calls or [])
    assert json.loads(streamed) == reply.tool_calls[0].arguments
    assert [chunk.finish_reason for chunk in chunks if chunk.finish_reason] == ["tool_calls"]
    body = json.dumps(model_server.requests[-1], ensure_ascii=False)  # type: ignore[attr-defined]
    assert '"name": "send_email"' in body  # the tool definition went as it was
    assert_no_canary(seen_by_model(model_server))


def test_openai_tool_results_go_back_anonymized(config: VeilConfig, model_server: ThreadingHTTPServer) -> None:
    llm = VeilChatGenerator(generator=openai_generator(model_server), config=config, scope="conversation-5")
    first = llm.run([ChatMessage.from_user(TEXT)], tools=[TOOL])["replies"][0]
    history = [ChatMessage.from_user(TEXT), first, ChatMessage.from_tool(f"envoyé à {EMAIL}", origin=first.tool_call)]
    final = llm.run(history, tools=[TOOL])["replies"][0]
    assert final.text == f"Reçu : envoyé à {EMAIL}"
    assert_no_canary(seen_by_model(model_server))
