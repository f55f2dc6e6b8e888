"""The upstream model of an agent, played deterministically: it acts on the placeholders it is given.

`agent_policy` is what a tool-calling model does with the two tools of the tests' agent: asked
about a customer, it looks the customer up by the e-mail token it was given; told the customer's
file, it sends a message to the phone token in it; then it reports, with the tokens it saw. It only
ever has what it received to work with, so a value can only reach a tool if veil restored it.
"""

from __future__ import annotations

import re
import threading

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

TOKEN = re.compile(r"\{\{([A-Z_]+)_\d+\}\}")


def first_token(text: str, entity: str) -> str | None:
    for match in TOKEN.finditer(text):
        if match.group(1) == entity:
            return match.group(0)
    return None


def agent_policy(messages: list[BaseMessage]) -> AIMessage:
    last = messages[-1]
    asked = next(m for m in reversed(messages) if isinstance(m, HumanMessage)).text
    if isinstance(last, HumanMessage):
        email = first_token(asked, "EMAIL") or "nobody"
        return AIMessage("", tool_calls=[{"name": "lookup_customer", "args": {"email": email}, "id": "call-lookup"}])
    if isinstance(last, ToolMessage) and last.name == "lookup_customer":
        phone = first_token(last.text, "PHONE") or "none"
        call = {"name": "send_message", "args": {"phone": phone, "text": "Your order has shipped."}, "id": "call-send"}
        return AIMessage("", tool_calls=[call])
    # The phone number is in the customer file, or wherever the history still has it (a summary).
    seen = " ".join(f"{m.text} {getattr(m, 'tool_calls', '')}" for m in reversed(messages))
    email = first_token(asked, "EMAIL")
    phone = first_token(seen, "PHONE")
    return AIMessage(f"Done: {email} was told at {phone} that the order has shipped.")


class Directory:
    """The tools' side: a customer directory and an outbox, recording the arguments they get."""

    def __init__(self, customers: dict[str, str]) -> None:
        self.customers = customers
        self.lookups: list[str] = []
        self.sent: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def tools(self) -> list[object]:
        directory = self

        @tool
        def lookup_customer(email: str) -> str:
            """The customer file of an e-mail address."""
            with directory._lock:
                directory.lookups.append(email)
            phone = directory.customers.get(email)
            return f"Customer {email}, phone {phone}, plan Gold" if phone else "no such customer"

        @tool
        def send_message(phone: str, text: str) -> str:
            """Send a text message to a phone number."""
            with directory._lock:
                directory.sent.append((phone, text))
            return f"sent to {phone}"

        return [lookup_customer, send_message]
