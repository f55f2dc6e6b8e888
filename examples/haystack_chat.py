"""A Haystack Agent whose model never sees personal data, while its tools get the real values.

VeilChatGenerator wraps the Agent's chat generator: the conversation, the tool calls and the
tool results reach the model as tokens ({{EMAIL_1}}); the tool-call arguments the model writes
are restored before the tool runs; the final answer is streamed back restored, chunk by chunk.
The model is Haystack's MockChatGenerator following a script — swap in OpenAIChatGenerator.

Run: uv run python examples/haystack_chat.py
"""

import os

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # Haystack's usage telemetry: off unless asked

import re

from haystack.components.agents import Agent
from haystack.components.generators.chat import MockChatGenerator
from haystack.dataclasses import ChatMessage, StreamingChunk, ToolCall
from haystack.tools import Tool
from veil_haystack import VeilChatGenerator, VeilConfig

MODEL_SAW: list[str] = []
TOOL_GOT: list[dict[str, str]] = []
SHOWN: list[str] = []


def scripted_model(messages: list[ChatMessage]) -> ChatMessage:
    """A stand-in model: asks the tool to write to the address it was given, then reports."""
    MODEL_SAW.extend(m.text or str(m.tool_call_result.result if m.tool_call_result else "") for m in messages)
    last = messages[-1]
    if last.tool_call_result is not None:
        return ChatMessage.from_assistant(f"C'est fait : {last.tool_call_result.result}")
    address = re.findall(r"\{\{EMAIL_\d+\}\}", last.text or "")[0]
    card = re.findall(r"\{\{CREDIT_CARD_\d+\}\}", last.text or "")[0]
    arguments = {"to": address, "body": f"Bonjour, votre carte {card} est bloquée."}
    return ChatMessage.from_assistant(tool_calls=[ToolCall(tool_name="send_email", arguments=arguments, id="call_1")])


def send_email(to: str, body: str) -> str:
    """The tool runs with the real values."""
    TOOL_GOT.append({"to": to, "body": body})
    return f"courriel envoyé à {to}"


def show(chunk: StreamingChunk) -> None:
    SHOWN.append(chunk.content)


def main() -> None:
    tool = Tool(
        name="send_email",
        description="Send an e-mail.",
        parameters={"type": "object", "properties": {"to": {"type": "string"}, "body": {"type": "string"}}},
        function=send_email,
    )
    llm = VeilChatGenerator(generator=MockChatGenerator(response_fn=scripted_model), config=VeilConfig())
    agent = Agent(chat_generator=llm, tools=[tool], streaming_callback=show)
    user = "Écris à marie.tremblay@exemple.qc.ca que sa carte 4111 1111 1111 1111 est bloquée."
    result = agent.run(messages=[ChatMessage.from_user(user)])

    print("model saw:     ", " | ".join(dict.fromkeys(text for text in MODEL_SAW if text)))
    print("tool got:      ", TOOL_GOT[0]["to"], "/", TOOL_GOT[0]["body"])
    print("streamed:      ", "".join(SHOWN))
    print("final answer:  ", result["last_message"].text)


if __name__ == "__main__":
    main()
