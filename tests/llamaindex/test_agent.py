"""A LlamaIndex agent over VeilLLM: tools get real values, the model gets tokens, the user a restored answer."""

from __future__ import annotations

import asyncio

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool
from veil_llamaindex import VeilLLM

from veil import Veil

from .conftest import CANARIES, RecordingLLM, leaked


def test_function_agent_runs_its_tool_with_real_values_and_the_model_sees_tokens_only(veil: Veil) -> None:
    received: list[str] = []

    def send_invoice(recipient: str) -> str:
        """Send the invoice by e-mail."""
        received.append(recipient)
        return f"Invoice sent to {recipient}. Card on file: {CANARIES['card']}."

    upstream = RecordingLLM(chunk_size=2)
    llm = VeilLLM(llm=upstream, veil=veil, scope="conv-agent")
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=send_invoice)], llm=llm, system_prompt="You help.")

    async def run() -> str:
        return str(await agent.run(user_msg=f"Please mail the invoice to {CANARIES['email']}"))

    answer = asyncio.run(run())
    assert received == [CANARIES["email"]]
    assert answer == f"Done: Invoice sent to {CANARIES['email']}. Card on file: {CANARIES['card']}."
    assert leaked(upstream.seen) == []
    seen = "\n".join(upstream.seen)
    assert '"tool_kwargs":{"recipient":"{{EMAIL_1}}"}' in seen  # the call, as the model wrote it, in history
    assert "Invoice sent to {{EMAIL_1}}. Card on file: {{CREDIT_CARD_1}}." in seen  # the tool result, tokenized
