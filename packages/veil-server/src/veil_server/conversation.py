"""One request's anonymization: decide whether to anonymize, anonymize what goes upstream, restore
what comes back, and describe it in the response's `veil` block.

Whether: the body's `"anonymize": true|false`, else the `X-Anonymize` header, else the key's
policy (on by default). A key whose policy forbids opting out gets 403 when a request tries.
Mode: `"anonymize_mode"` in the body, else `X-Anonymize-Mode`, else the key's, else the policy's.

What: every message's content (strings and text parts), tool-call arguments, tool results, and
the other string fields of the request that are not descriptive (`user`, unknown extensions);
tool definitions, `response_format`, `model`, ids and images are left as they are. A failure
of detection or of the vault raises before anything is sent upstream (fail closed).

Restore: each piece of the answer (a choice's content, a tool call's arguments) gets its own
streaming restorer, fed as the pieces arrive; arguments are restored with JSON-string escaping
since they are JSON text. Restores are lenient (a token the model made up stays as written) and
reported in the drift block.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from veil.restore import Drift, StreamingRestorer
from veil.session import Anonymized, Replacement, Session
from veil.structured import DESCRIPTIVE_KEYS
from veil_server.auth import Principal
from veil_server.errors import ApiError

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
MODES = ("strict", "permissive")

# Fields of a request body that veil reads and never forwards.
VEIL_FIELDS = ("anonymize", "anonymize_mode", "veil_scope")

# Request fields that configure the call rather than carry data (besides the core's descriptive keys).
_SETTINGS_KEYS = DESCRIPTIVE_KEYS | {
    "messages", "stream", "stream_options", "n", "temperature", "top_p", "max_tokens", "max_completion_tokens",
    "presence_penalty", "frequency_penalty", "seed", "logprobs", "top_logprobs", "parallel_tool_calls",
    "service_tier", "reasoning_effort", "encoding_format", "dimensions", "echo", "best_of", "suffix", "store",
    "prediction", "audio", "web_search_options", "verbosity",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Decision:
    anonymize: bool
    mode: str | None
    scope: str | None


def _flag(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ApiError(400, f"{name} must be true or false", param=name, code="invalid_request")


def decide(request: Request, body: Mapping[str, Any], principal: Principal) -> Decision:
    """Read the veil extensions of a request (header and body) against the key's policy."""
    flag = body.get("anonymize")
    if flag is None and (header := request.headers.get("x-anonymize")) is not None:
        flag = _flag(header, "X-Anonymize")
    if flag is not None and not isinstance(flag, bool):
        raise ApiError(400, "anonymize must be a boolean", param="anonymize", code="invalid_request")
    anonymize = principal.policy.anonymize if flag is None else flag
    if not anonymize and principal.policy.anonymize and not principal.policy.allow_opt_out:
        raise ApiError(403, "this API key may not turn anonymization off", param="anonymize",
                       code="anonymization_required", type="permission_error")  # fmt: skip
    mode = body.get("anonymize_mode") or request.headers.get("x-anonymize-mode") or principal.policy.mode
    if mode is not None and mode not in MODES:
        raise ApiError(400, "anonymize_mode must be 'strict' or 'permissive'", param="anonymize_mode",
                       code="invalid_request")  # fmt: skip
    scope = body.get("veil_scope") or request.headers.get("x-veil-scope") or None
    if scope is not None and not isinstance(scope, str):
        raise ApiError(400, "veil_scope must be a string", param="veil_scope", code="invalid_request")
    return Decision(anonymize, mode, scope)


def strip_veil_fields(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in VEIL_FIELDS}


@dataclass
class Turn:
    """The anonymization of one request and the restore of its answer."""

    session: Session
    named_scope: bool
    show_mapping: bool
    replacements: list[Replacement] = field(default_factory=list)
    _restorers: list[StreamingRestorer] = field(default_factory=list)

    # -- outbound ---------------------------------------------------------------------------

    def _take(self, result: Anonymized) -> Any:
        self.replacements.extend(result.replacements)
        return result.value

    def anonymize_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """A copy of a chat request with its messages and data fields anonymized."""
        out = self.anonymize_fields(body)
        out["messages"] = self._take(self.session.anonymize(body["messages"]))
        self.warm()
        return out

    def anonymize_fields(self, body: dict[str, Any], *, data_keys: tuple[str, ...] = ()) -> dict[str, Any]:
        """Every string field of `body` that is data (the `data_keys`, `user`, unknown extensions)."""
        out = dict(body)
        data = {key: value for key, value in body.items() if key in data_keys or key not in _SETTINGS_KEYS}
        if data:
            out.update(self._take(self.session.anonymize(data, skip_keys=DESCRIPTIVE_KEYS)))
        return out

    def warm(self) -> None:
        """Load the values of the tokens sent, so that restoring the answer needs no vault read."""
        for token in self.session.sent_tokens:
            self.session.value_of(token)

    # -- inbound ----------------------------------------------------------------------------

    def restorer(self, *, json_string: bool = False) -> StreamingRestorer:
        restorer = self.session.stream_restorer(lenient=True, json_string=json_string)
        assert isinstance(restorer, StreamingRestorer), "the server's veils write {{TOKEN_N}} tokens"
        self._restorers.append(restorer)
        return restorer

    def restore_text(self, text: str, *, json_string: bool = False) -> str:
        restorer = self.restorer(json_string=json_string)
        return restorer.feed(text) + restorer.flush()

    def restore_chat_message(self, message: dict[str, Any]) -> dict[str, Any]:
        out = dict(message)
        for key in ("content", "refusal", "reasoning_content"):
            if isinstance(message.get(key), str):
                out[key] = self.restore_text(message[key])
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            out["tool_calls"] = [self._restore_call(call) for call in calls]
        if isinstance(message.get("function_call"), dict):
            out["function_call"] = self._restore_function(message["function_call"])
        return out

    def _restore_function(self, function: dict[str, Any]) -> dict[str, Any]:
        if isinstance(function.get("arguments"), str):
            return {**function, "arguments": self.restore_text(function["arguments"], json_string=True)}
        return function

    def _restore_call(self, call: Any) -> Any:
        if isinstance(call, dict) and isinstance(call.get("function"), dict):
            return {**call, "function": self._restore_function(call["function"])}
        return call

    # -- report ------------------------------------------------------------------------------

    def drift(self) -> Drift:
        """Dropped: sent but restored by no piece of the answer; altered and invented: by any piece."""
        sent = self.session.sent_tokens
        if not self._restorers:
            return Drift(dropped=tuple(sorted(sent)))
        reports = [restorer.drift for restorer in self._restorers]
        dropped = set(sent)
        altered: dict[str, None] = {}
        invented: dict[str, None] = {}
        for report in reports:
            dropped &= set(report.dropped)
            altered.update(dict.fromkeys(report.altered))
            invented.update(dict.fromkeys(report.invented))
        return Drift(tuple(sorted(dropped)), tuple(altered), tuple(invented))

    @property
    def pii_types(self) -> list[str]:
        return sorted({r.span.entity for r in self.replacements})

    def block(self, *, with_drift: bool = True) -> dict[str, Any]:
        block: dict[str, Any] = {
            "anonymized": True,
            "pii_count": len(self.replacements),
            "pii_types": self.pii_types,
            "scope": self.session.scope if self.named_scope else None,
        }
        if with_drift:
            block["drift"] = self.drift().to_dict()
        if self.show_mapping:
            block["mapping"] = self.mapping()
        return block

    def mapping(self) -> dict[str, str]:
        """token → value for the tokens this request sent (only for keys with `mapping:read`)."""
        out = {}
        for token in self.session.sent_tokens:
            value = self.session.value_of(token)
            if value is not None:
                out[token] = value
        return out


def not_anonymized_block() -> dict[str, Any]:
    return {"anonymized": False, "pii_count": 0, "pii_types": []}
