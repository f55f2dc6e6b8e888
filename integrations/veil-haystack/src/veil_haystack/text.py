"""VeilTextAnonymizer and VeilRestorer: the two ends of a pipeline whose middle must not see personal data.

    query ─► VeilTextAnonymizer ─► (retriever, prompt builder, chat generator …) ─► VeilRestorer ─► answer
                     └──────────────────────── scope ──────────────────────────────────┘

The anonymizer replaces personal data in a string and/or a list of ChatMessages by the tokens of
a scope, and outputs the scope; the restorer takes the model's text or replies and the scope,
and puts the values back.
"""

from __future__ import annotations

from typing import Any

from haystack import component, default_from_dict, default_to_dict
from haystack.dataclasses import ChatMessage

from veil_haystack._base import VeilComponent, with_config
from veil_haystack._messages import anonymize_messages, restore_messages
from veil_haystack.config import VeilConfig


@component
class VeilTextAnonymizer(VeilComponent):
    """
    Replaces personal data in a text and/or chat messages by tokens (`{{EMAIL_1}}`) of a scope.

    Within a scope one value always gets the same token, in this run and later ones: anonymize the
    queries of a collection in the collection's scope and they match its anonymized documents.
    Without a scope (input or init parameter) each run gets a fresh one. Fails closed: if
    detection or the vault fails, `run()` raises and nothing is output.

    ```python
    anonymizer = VeilTextAnonymizer(config=VeilConfig(path=".veil"), scope="kb")
    anonymizer.run(text="Write to marie@exemple.qc.ca")
    # {'text': 'Write to {{EMAIL_1}}', 'scope': 'kb', 'pii_count': 1}
    ```
    """

    def __init__(
        self, *, config: VeilConfig | None = None, scope: str | None = None, forward_media: bool = False
    ) -> None:
        """
        :param config: Where the vault and keys are, the tenant and the policy. Default: in process memory.
        :param scope: The default scope (a conversation, or a collection); the `scope` input overrides it.
        :param forward_media: Pass images and files in messages through unchecked (by default they are refused).
        """
        self._init_veil(config, scope)
        self.forward_media = forward_media

    def to_dict(self) -> dict[str, Any]:
        """Serialize the component (its settings; secrets by environment variable name)."""
        return default_to_dict(self, config=self.config, scope=self.scope, forward_media=self.forward_media)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VeilTextAnonymizer:
        """Rebuild the component from `to_dict()` output."""
        return default_from_dict(cls, with_config(data))

    @component.output_types(text=str, messages=list[ChatMessage], scope=str, pii_count=int)
    def run(
        self, text: str | None = None, messages: list[ChatMessage] | None = None, scope: str | None = None
    ) -> dict[str, Any]:
        """
        Anonymize a text and/or chat messages.

        :param text: A text to anonymize.
        :param messages: Chat messages to anonymize: text, tool-call arguments, tool results, reasoning.
        :param scope: The scope of the tokens; overrides the component's.
        :returns: `text` and/or `messages` (for the inputs given), `scope` (to connect to the restorer),
            and `pii_count` (values replaced).
        """
        session = self._session(scope, fresh=True)
        out: dict[str, Any] = {"scope": session.scope}
        count = 0
        if text is not None:
            anonymized = session.anonymize(text)
            out["text"] = anonymized.text
            count += anonymized.pii_count
        if messages is not None:
            out["messages"], replaced = anonymize_messages(session, messages, forward_media=self.forward_media)
            count += replaced
        out["pii_count"] = count
        return out


@component
class VeilRestorer(VeilComponent):
    """
    Puts back the values of a scope's tokens in a model's text or replies.

    Restores exact tokens and the forms models mangle them into (`{{ email_1 }}`, `{EMAIL_1}`, …).
    A token the scope does not know (made up by the model, erased, expired) raises
    `veil.TokenNotFound`, unless `lenient=True` keeps it as written.

    ```python
    restorer = VeilRestorer(config=VeilConfig(path=".veil"))
    restorer.run(text="I wrote to {{EMAIL_1}}.", scope="kb")
    # {'text': 'I wrote to marie@exemple.qc.ca.'}
    ```
    """

    def __init__(self, *, config: VeilConfig | None = None, scope: str | None = None, lenient: bool = False) -> None:
        """
        :param config: The settings of the anonymizer whose tokens this restores (the same vault and tenant).
        :param scope: The default scope; the `scope` input overrides it. One of the two is required.
        :param lenient: Keep unknown tokens as written instead of raising `veil.TokenNotFound`.
        """
        self._init_veil(config, scope)
        self.lenient = lenient

    def to_dict(self) -> dict[str, Any]:
        """Serialize the component (its settings; secrets by environment variable name)."""
        return default_to_dict(self, config=self.config, scope=self.scope, lenient=self.lenient)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VeilRestorer:
        """Rebuild the component from `to_dict()` output."""
        return default_from_dict(cls, with_config(data))

    @component.output_types(text=str, messages=list[ChatMessage])
    def run(
        self, text: str | None = None, messages: list[ChatMessage] | None = None, scope: str | None = None
    ) -> dict[str, Any]:
        """
        Restore a text and/or chat messages (a chat generator's `replies`).

        :param text: A text holding tokens.
        :param messages: Chat messages holding tokens: text, tool-call arguments, tool results, reasoning.
        :param scope: The scope the tokens belong to (the anonymizer's `scope` output); overrides the component's.
        :returns: `text` and/or `messages`, restored, for the inputs given.
        """
        session = self._session(scope, fresh=False)
        out: dict[str, Any] = {}
        if text is not None:
            out["text"] = session.restore(text, lenient=self.lenient)
        if messages is not None:
            out["messages"] = restore_messages(session, messages, lenient=self.lenient)
        return out
