"""A LlamaIndex agent with a tool, behind veil: the model plans with tokens, the tool runs with
the real values, and what the tool returns goes back to the model anonymized.

The model is LlamaIndex's own MockFunctionCallingLLM with a scripted policy (call the tool with
the e-mail token it was given, then report the tool's result), so the example runs offline; put
OpenAI, Anthropic or any FunctionCallingLLM in its place unchanged.

Run: uv run python examples/llamaindex_agent.py
"""

import asyncio
import json
import re
from collections.abc import Sequence
from typing import Any

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool
from veil_llamaindex import VeilLLM

from veil import Engine, Veil
from veil.detect import BUILTIN_RULES, RuleDetector

TOKEN = re.compile(r"\{\{EMAIL_\d+\}\}")
seen_by_model: list[str] = []


def scripted_model(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
    """First turn: call the tool with the e-mail token from the request. Then: report its result."""
    for message in messages:
        calls = [json.dumps(b.tool_kwargs) for b in message.blocks if isinstance(b, ToolCallBlock)]
        seen_by_model.append(f"{message.role.value}: {message.content or ' '.join(calls)}")
    results = [m for m in messages if m.role == MessageRole.TOOL]
    if results:
        return ChatMessage(role=MessageRole.ASSISTANT, content=f"Done. {results[-1].content}")
    request = next(m for m in reversed(messages) if m.role == MessageRole.USER).content or ""
    match = TOKEN.search(request)
    call = ToolCallBlock(tool_call_id="call-1", tool_name="send_invoice",
                         tool_kwargs={"recipient": match.group(0) if match else ""})  # fmt: skip
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])


def send_invoice(recipient: str) -> str:
    """E-mail the latest invoice to a customer."""
    print("tool ran with: ", recipient)
    return f"Invoice INV-2291 sent to {recipient}; the card on file, 4111 1111 1111 1111, was charged."


async def main() -> None:
    veil = Veil(engine=Engine(detectors=[RuleDetector(BUILTIN_RULES)]))  # in memory; Veil.open(path) persists
    llm = VeilLLM(llm=MockFunctionCallingLLM(response_generator=scripted_model), veil=veil, scope="conversation-7")
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=send_invoice)], llm=llm,
                          system_prompt="You handle billing requests.")  # fmt: skip
    answer = await agent.run(user_msg="Please send the invoice to marie.tremblay@exemple.qc.ca")
    for line in seen_by_model:
        print("to the model:  ", line)
    print("to the user:   ", answer)


if __name__ == "__main__":
    asyncio.run(main())
