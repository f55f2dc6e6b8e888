"""The pieces of VeilMiddleware that need no LangChain agents: the model of one model call, and
the anonymizers and walkers it uses (kept apart so that `veil_langchain.agents` reads as the
middleware's hooks only)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import Any, ClassVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, PrivateAttr

from veil import ConfigError, Session
from veil_langchain._scope import SCOPE_KEY
from veil_langchain._values import Anonymizer
from veil_langchain.chat_models import VeilChatModel

# -- the model, bound to one call's session ------------------------------------------------------


class ScopedChatModel(VeilChatModel):
    """The agent's model inside one model call: a `VeilChatModel` on the call's session (so the
    middleware and the model share one mapping), exposing the wrapped model's name and profile
    (the agent picks a structured-output strategy from them), keeping the upstream answer."""

    model_name: str | None = None
    keeps_upstream: ClassVar[bool] = True
    _bound: Session | None = PrivateAttr(default=None)
    _answers: list[AIMessage] = PrivateAttr(default_factory=list)
    _checked: dict[int, BaseMessage] = PrivateAttr(default_factory=dict)

    @classmethod
    def around(cls, model: BaseChatModel, session: Session, *, lenient: bool, allow_binary: bool) -> ScopedChatModel:
        if isinstance(model, VeilChatModel):
            raise ConfigError(
                "VeilMiddleware wraps the agent's model itself: give create_agent the provider's model, "
                "not a VeilChatModel"
            )
        if not isinstance(model, BaseChatModel):
            raise ConfigError(
                f"VeilMiddleware needs a BaseChatModel, got {type(model).__name__} (a configurable model "
                "from init_chat_model cannot be wrapped: give create_agent a concrete chat model)"
            )
        name = getattr(model, "model_name", None) or getattr(model, "model", None)
        wrapped = cls(
            model=model, veil=session.veil, scope=session.scope, tenant=session.tenant, lenient=lenient,
            allow_binary=allow_binary, keep_tokens=True, profile=model.profile,
            model_name=name if isinstance(name, str) else None,
        )  # fmt: skip
        wrapped._bound = session
        return wrapped

    def _session(self, kwargs: dict[str, Any]) -> Any:
        kwargs.pop(SCOPE_KEY, None)
        return nullcontext(self._bound)

    def _upstream_answer(self, message: AIMessage) -> None:
        self._answers.append(message)

    def vouch_for(self, messages: list[BaseMessage]) -> None:
        """Messages the middleware has just anonymized: given back unchanged, they are not
        checked twice. (Held by reference, so their ids cannot be reused by other objects.)"""
        for message in messages:
            self._checked[id(message)] = message

    def _anonymizer(self, session: Session) -> Anonymizer:
        return VouchedAnonymizer(session, self._checked, allow_binary=self.allow_binary)

    @property
    def upstream_answers(self) -> list[AIMessage]:
        return self._answers


# -- values already in the scope ---------------------------------------------------------------


class KnownValues:
    """The scope's known values, replaced by their tokens wherever they appear as whole words.

    Detection is contextual (a name, a date of birth): a value the model received as a token and
    wrote back may sit, once restored, where the detectors no longer find it. Text that has been
    through a restore is therefore also checked against the values the scope already holds."""

    def __init__(self, session: Session) -> None:
        by_value: dict[str, str] = {}
        for token, value in session.mapping().items():
            if value.strip():
                by_value.setdefault(value, token)
        self._tokens = by_value
        values = sorted(by_value, key=len, reverse=True)
        self._pattern = (
            re.compile(r"(?<!\w)(?:" + "|".join(re.escape(value) for value in values) + r")(?!\w)") if values else None
        )

    def text(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda match: self._tokens[match.group(0)], text)

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {key: self.json(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.json(item) for item in value]
        return value


class VouchedAnonymizer(Anonymizer):
    """The model's own check: messages the middleware anonymized pass as they are; anything an
    inner middleware added or changed is anonymized (tokens of the scope kept)."""

    def __init__(self, session: Session, checked: dict[int, BaseMessage], *, allow_binary: bool) -> None:
        super().__init__(session, allow_binary=allow_binary, keep_tokens=True)
        self.checked = checked

    def message(self, message: BaseMessage) -> BaseMessage:
        if self.checked.get(id(message)) is message:
            return message
        return super().message(message)


class AgentAnonymizer(Anonymizer):
    """Detection, then the scope's known values (see `KnownValues`)."""

    def __init__(self, session: Session, *, allow_binary: bool, keep_tokens: bool) -> None:
        super().__init__(session, allow_binary=allow_binary, keep_tokens=keep_tokens)
        self.known = KnownValues(session)

    def text(self, text: str) -> str:
        return self.known.text(super().text(text))

    def json(self, value: Any, skip_keys: frozenset[str] = frozenset()) -> Any:
        return self.known.json(super().json(value, skip_keys))

    def _arguments(self, text: str) -> str:
        return self.known.text(super()._arguments(text))


def map_structured(value: Any, strings: Callable[[Any], Any]) -> Any:
    """A structured response (pydantic model, dataclass, dict, list, text) with every string leaf
    passed through `strings`, its types kept (pydantic models are rebuilt without validation: a
    field typed as an e-mail address must be able to hold a token)."""
    if isinstance(value, BaseModel):
        fields = {name: map_structured(getattr(value, name), strings) for name in type(value).model_fields}
        return type(value).model_construct(**fields)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {field.name: map_structured(getattr(value, field.name), strings)
                   for field in dataclasses.fields(value) if field.init}  # fmt: skip
        return dataclasses.replace(value, **changes)
    if isinstance(value, Mapping):
        return {key: map_structured(item, strings) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [map_structured(item, strings) for item in value]
    if isinstance(value, str):
        return strings(value)
    return value
