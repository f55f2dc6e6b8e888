"""A round trip through veil's gateway with the official OpenAI SDK: only the base URL changes.

The gateway runs here in a thread (like `veil serve` with no configuration: the built-in `echo`
model, which answers with what it received). What the model sees is anonymized; what the client
gets back, unary, streamed or as tool-call arguments, is restored.

Run: uv run python examples/server_roundtrip.py
"""

import json
import socket
import threading

import httpx
import uvicorn
from openai import OpenAI
from veil_server import Settings, create_app

MESSAGE = "Bonjour, écrivez à marie.tremblay@exemple.qc.ca ou appelez le +1 514 872 3456. NAS 130 692 544."


def start_gateway() -> tuple[str, uvicorn.Server, threading.Thread]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    app = create_app(Settings(vault={"url": "memory"}, policy={"ner": "off"}))  # rules only: starts in a second
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}/v1", server, thread


def main() -> None:
    base_url, server, thread = start_gateway()
    try:
        # What a model would see: the anonymize endpoint returns the text veil sends upstream.
        seen = httpx.post(f"{base_url}/anonymize", json={"text": MESSAGE}).json()
        print("the model sees: ", seen["anonymized_text"])

        client = OpenAI(base_url=base_url, api_key="no-key-configured")
        answer = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": MESSAGE}])
        print("unary answer:   ", answer.choices[0].message.content)
        print("veil block:     ", json.dumps(answer.model_extra["veil"], ensure_ascii=False))

        stream = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": MESSAGE}],
                                                stream=True)  # fmt: skip
        print("streamed answer:", "".join(c.choices[0].delta.content or "" for c in stream if c.choices))

        tools = [{"type": "function", "function": {
            "name": "send_sms", "description": "Send a text message",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        }}]  # fmt: skip
        called = client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": MESSAGE}], tools=tools
        )
        call = called.choices[0].message.tool_calls[0]
        print("tool call:      ", call.function.name, json.loads(call.function.arguments))
    finally:
        server.should_exit = True
        thread.join(timeout=10)


if __name__ == "__main__":
    main()
