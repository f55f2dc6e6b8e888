"""The Veil facade and its Sessions: anonymize, restore, stream — the API applications use.

    veil = Veil.open(".veil")                        # SQLite vault + local key file (embedded default)
    session = veil.session("conversation-42")         # a scope: one mapping per conversation or collection
    sent = session.anonymize("Write to jean@exemple.ca")   # "Write to {{EMAIL_1}}"
    session.restore(model_answer)                      # tokens back to values

A Session ties a scope (tenant + name) to the engine, the vault and the key ring. Within a scope
one value always gets the same token, in this process or any other sharing the vault, because
the vault finds tokens by blind index. Values are sealed with AES-256-GCM bound to tenant,
scope and token. A Session caches the values it has seen; it is cheap and meant to be created
per request or conversation. A Veil is thread-safe and meant to be shared.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veil.audit import AuditLog, AuditStore, MemoryAuditStore, SQLiteAuditStore
from veil.crypto.envelope import Sealed, associated_data
from veil.crypto.keyring import KeyRing
from veil.crypto.keys import EphemeralKeyProvider, KeyProvider, KeyRef, LocalKeyFileProvider
from veil.detect.engine import Engine, resolve_overlaps
from veil.detect.policy import Policy
from veil.entities import LanguageOption, Span
from veil.errors import ConfigError, IntegrityError, TokenNotFound
from veil.normalize import normalize_value
from veil.restore import Drift, Restored, Restorer, StreamingRestorer, token_shaped
from veil.reveal import ApprovalStore, DualControl, RevealPolicy
from veil.structured import DESCRIPTIVE_KEYS, is_messages, map_json, map_messages
from veil.surrogates import SurrogateRestorer, SurrogateStreamingRestorer, make_surrogate
from veil.tokens import ENTITY_NAME, TOKEN_RE, format_token
from veil.vault.base import NewMapping, Vault, get_or_create_many
from veil.vault.memory import MemoryVault

DEFAULT_TENANT = "default"

LITERAL_ENTITY = "VEIL_LITERAL"
"""The entity of token-shaped text found in an input (`{{EMAIL_1}}` typed by a user): it becomes
a token of its own, so that it comes back as written instead of being taken for a token."""

KEPT_ENTITY = "VEIL_KEPT"
"""Marks a token of the scope kept as it is by `anonymize(..., keep_tokens=True)`; never stored."""


def value_aad(tenant: str, scope: str, token: str) -> bytes:
    """Associated data of a vault value: a row moved to another tenant, scope or token fails to open."""
    return associated_data("veil-value", tenant, scope, token)


@dataclass(frozen=True, slots=True)
class Replacement:
    """One value replaced: where (`path` into a structure, `()` for plain text), what, by which token."""

    path: tuple[str | int, ...]
    span: Span
    token: str


@dataclass(frozen=True, slots=True)
class Anonymized:
    """The anonymized value (same shape as the input) and what was replaced in it."""

    value: Any
    replacements: tuple[Replacement, ...]

    @property
    def text(self) -> str:
        if not isinstance(self.value, str):
            raise TypeError("this Anonymized holds a structure, not a text: use .value")
        return self.value

    @property
    def spans(self) -> tuple[Span, ...]:
        return tuple(r.span for r in self.replacements)

    @property
    def tokens(self) -> dict[str, str]:
        """token → entity, for every token used."""
        return {r.token: r.span.entity for r in self.replacements}

    @property
    def pii_count(self) -> int:
        return len(self.replacements)

    @property
    def pii_types(self) -> list[str]:
        return sorted({r.span.entity for r in self.replacements})


class Veil:
    """Engine + vault + key ring, shared by the sessions of an application."""

    def __init__(
        self,
        *,
        engine: Engine | None = None,
        policy: Policy | None = None,
        vault: Vault | None = None,
        keys: KeyProvider | None = None,
        tenant: str = DEFAULT_TENANT,
        ttl: float | None = None,
        audit: AuditStore | None = None,
        audit_traffic: bool = True,
        style: str = "token",
    ) -> None:
        """`Veil()` keeps mappings in memory under a random key: nothing survives the process.
        Use `Veil.open(path)` (SQLite + key file) or pass a vault and a key provider.

        `audit` stores the hash-chained audit log (in memory by default); `audit_traffic` also
        records every anonymize and restore call (counts and entity types), not only reveals,
        rotations and erasures. `style` is "token" (`{{EMAIL_1}}`) or "surrogate" (realistic fake
        values, see veil.surrogates)."""
        if style not in ("token", "surrogate"):
            raise ConfigError(f"style must be 'token' or 'surrogate', got {style!r}")
        self.style = style
        if engine is not None and policy is not None:
            raise ConfigError("give an engine or a policy, not both (the engine carries its policy)")
        self.engine = engine if engine is not None else Engine(policy)
        self.vault: Vault = vault if vault is not None else MemoryVault()
        if keys is None:
            if vault is not None and not isinstance(vault, MemoryVault):
                raise ConfigError(
                    "a persistent vault needs a persistent key provider: pass keys=LocalKeyFileProvider(path), "
                    "EnvKeyProvider() or an HSM provider"
                )
            keys = EphemeralKeyProvider()
        self.keys = keys
        self.keyring = KeyRing(keys, self.vault.keys)
        if not tenant:
            raise ConfigError("tenant must be a non-empty string")
        self.tenant = tenant
        self.ttl = ttl
        self.audit = AuditLog(audit if audit is not None else MemoryAuditStore(), self.keyring)
        self.audit_traffic = audit_traffic

    def with_engine(self, engine: Engine) -> Veil:
        """This Veil detecting with another engine (another mode or policy): the vault, key ring
        and audit log are shared, so tokens made by one restore in the other."""
        other = copy.copy(self)
        other.engine = engine
        return other

    @classmethod
    def open(cls, path: str | Path = ".veil", **options: Any) -> Veil:
        """The embedded default: `<path>/vault.db` (SQLite, WAL) and `<path>/keys.json` (mode 0600)."""
        from veil.vault.sqlite import SQLiteVault  # noqa: PLC0415

        root = Path(path)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        options.setdefault("audit", SQLiteAuditStore(root / "audit.db"))
        return cls(vault=SQLiteVault(root / "vault.db"), keys=LocalKeyFileProvider(root / "keys.json"), **options)

    def session(
        self, scope: str, *, tenant: str | None = None, subject: str | None = None, ttl: float | None = None
    ) -> Session:
        """A session on one scope (a conversation, or a collection of documents and queries)."""
        return Session(self, tenant or self.tenant, scope, subject=subject, ttl=ttl if ttl is not None else self.ttl)

    def subject_index(self, tenant: str, subject: str) -> str:
        """The blind index under which a data subject's values are filed (for erasure)."""
        return self.keyring.blind_index(tenant, "__subject__", subject.strip())

    def erase_scope(self, scope: str, *, tenant: str | None = None, actor: str | None = None) -> int:
        tenant = tenant or self.tenant
        count = self.vault.erase_scope(tenant, scope)
        self.audit.record("erase", tenant=tenant, actor=actor, scope=scope, count=count)
        return count

    def erase_subject(self, subject: str, *, tenant: str | None = None, actor: str | None = None) -> int:
        """Erase every value filed under a data subject (Loi 25 / GDPR), in every scope of the tenant."""
        tenant = tenant or self.tenant
        index = self.subject_index(tenant, subject)
        count = self.vault.erase_subject(tenant, index)
        # The subject id may itself be personal (an e-mail): the log keeps its blind index only.
        self.audit.record("erase", tenant=tenant, actor=actor, subject=index[:32], count=count)
        return count

    def rotate_keys(self, *, actor: str | None = None) -> tuple[KeyRef, int]:
        """Rotate the key-encryption key and re-wrap every data key under the new version."""
        ref, rewrapped = self.keyring.rotate()
        self.audit.record("rotate", tenant=self.tenant, actor=actor, kek=str(ref), rewrapped=rewrapped)
        return ref, rewrapped

    def reveal_mapping(self, tenant: str, scope: str) -> dict[str, str]:
        """A scope's whole mapping. Outside the restore path, go through `dual_control()`."""
        return self.session(scope, tenant=tenant).mapping()

    def dual_control(self, policy: RevealPolicy | None = None, store: ApprovalStore | None = None) -> DualControl:
        """Reveals of stored mappings under N-of-M approvals, audited."""
        return DualControl(self.reveal_mapping, self.audit, policy=policy, store=store)

    def close(self) -> None:
        self.vault.close()


class Session:
    """Anonymize and restore within one scope. Not shared between threads without care: cheap to create."""

    def __init__(self, veil: Veil, tenant: str, scope: str, *, subject: str | None = None, ttl: float | None = None):
        if not scope:
            raise ConfigError("scope must be a non-empty string")
        self.veil = veil
        self.tenant = tenant
        self.scope = scope
        self.ttl = ttl
        self._subject = veil.subject_index(tenant, subject) if subject else None
        self._values: dict[str, str] = {}  # token → value, for tokens this session has seen
        self._tokens: dict[tuple[str, str], str] = {}  # (entity, normalised value) → token
        self._sent: dict[str, None] = {}
        self._literal_bare: set[str] = set()
        self._lock = threading.Lock()

    # -- anonymize --------------------------------------------------------------------------

    def token_for(self, entity: str, value: str) -> str:
        """The scope's token for a value (created if new)."""
        return self.tokens_for([(entity, value)])[0]

    def tokens_for(self, values: list[tuple[str, str]]) -> list[str]:
        """The scope's tokens for (entity, value) pairs, new ones created in one vault transaction."""
        for index, (entity, _) in enumerate(values):
            # The entity becomes part of the token, stored in clear: a value passed in its place must
            # never end up there (nor in this message).
            if not isinstance(entity, str) or not ENTITY_NAME.fullmatch(entity):
                raise ConfigError(f"tokens_for: entity #{index} is not an entity name (UPPER_SNAKE_CASE: EMAIL …)")
        keys = [(entity, normalize_value(entity, value)) for entity, value in values]
        missing: dict[tuple[str, str], str] = {}
        for key, (_, value) in zip(keys, values, strict=True):
            if key not in self._tokens and key not in missing:
                missing[key] = value
        if missing:
            veil = self.veil
            veil.keyring.prepare(self.tenant)  # data keys ready before the vault's transaction opens
            expires = time.time() + self.ttl if self.ttl else None
            mappings = []
            for (entity, normalized), value in missing.items():
                blind_index = veil.keyring.blind_index(self.tenant, entity, normalized)
                mappings.append(NewMapping(entity, blind_index, self._sealer(value), self._subject, expires))
            factory = make_surrogate if veil.style == "surrogate" else format_token
            results = get_or_create_many(veil.vault, self.tenant, self.scope, mappings, factory)
            with self._lock:
                for (key, value), (token, created) in zip(missing.items(), results, strict=True):
                    self._tokens[key] = token
                    if created:
                        self._values[token] = value
        return [self._tokens[key] for key in keys]

    def _sealer(self, value: str) -> Callable[[str], Sealed]:
        raw = value.encode("utf-8")
        keyring, tenant, scope = self.veil.keyring, self.tenant, self.scope

        def seal(token: str) -> Sealed:
            return keyring.encrypt(tenant, raw, value_aad(tenant, scope, token))

        return seal

    def _anonymize_text(self, text: str, path: tuple[str | int, ...], language: LanguageOption | None,
                        out: list[Replacement], keep_tokens: bool = False, *,
                        detected: list[Span] | None = None) -> str:  # fmt: skip
        spans = self.veil.engine.detect(text, language) if detected is None else detected
        braced, bare = token_shaped(text)
        if bare:
            self._literal_bare.update(bare)
        if braced:
            spans = resolve_overlaps(
                [*spans, *(self._braced_span(text, s, e, keep_tokens) for s, e in braced)], text=text
            )
        if not spans:
            return text
        replaced = [span for span in spans if span.entity != KEPT_ENTITY]
        tokens = iter(self.tokens_for([(span.entity, text[span.start : span.end]) for span in replaced]))
        pieces: list[str] = []
        position = 0
        for span in spans:
            pieces.append(text[position : span.start])
            if span.entity == KEPT_ENTITY:
                token = text[span.start : span.end]
            else:
                token = next(tokens)
                out.append(Replacement(path, span, token))
            pieces.append(token)
            position = span.end
            self._sent.setdefault(token)
        pieces.append(text[position:])
        return "".join(pieces)

    def _braced_span(self, text: str, start: int, end: int, keep_tokens: bool) -> Span:
        """A token-shaped string found in an input: a literal, or (with `keep_tokens`) a token of
        this scope kept as it is."""
        if keep_tokens and TOKEN_RE.fullmatch(text, start, end) and self.value_of(text[start:end]) is not None:
            return Span(start, end, KEPT_ENTITY, 1.0, "veil")
        return Span(start, end, LITERAL_ENTITY, 1.0, "veil")

    def anonymize(
        self,
        value: Any,
        *,
        language: LanguageOption | None = None,
        skip_keys: frozenset[str] = DESCRIPTIVE_KEYS,
        keep_tokens: bool = False,
    ) -> Anonymized:
        """Anonymize a text, a list of chat messages, or any JSON value (every string leaf).

        With `keep_tokens`, a token of this scope found in the input (`{{EMAIL_1}}` in a document
        anonymized earlier in the same collection, now part of a prompt) is kept as it is, and
        restores to its value, instead of becoming a literal of its own. This reveals nothing new:
        restore already turns any token of the scope the model writes into its value."""
        found: list[Replacement] = []

        def leaf(text: str, path: tuple[str | int, ...]) -> str:
            return self._anonymize_text(text, path, language, found, keep_tokens)

        if isinstance(value, str):
            result: Any = leaf(value, ())
        elif is_messages(value):
            result = map_messages(value, leaf)
        else:
            result = map_json(value, leaf, skip=skip_keys)
        anonymized = Anonymized(result, tuple(found))
        self._audit_tokenize(found)
        return anonymized

    def anonymize_texts(self, texts: Sequence[str], *, language: LanguageOption | None = None) -> list[Anonymized]:
        """`anonymize` over many plain texts (a batch of a corpus): the engine reads them together
        (`detect_many`: spaCy batches them, several times faster), then each is tokenized in turn,
        so a value gets the same token as it would from `anonymize` one text at a time."""
        results = []
        found: list[Replacement] = []
        for text, spans in zip(texts, self.veil.engine.detect_many(texts, language), strict=True):
            replaced: list[Replacement] = []
            results.append(Anonymized(self._anonymize_text(text, (), language, replaced, detected=spans),
                                      tuple(replaced)))  # fmt: skip
            found.extend(replaced)
        self._audit_tokenize(found)
        return results

    def _audit_tokenize(self, found: list[Replacement]) -> None:
        if self.veil.audit_traffic and found:
            counts: dict[str, int] = {}
            for replacement in found:
                counts[replacement.span.entity] = counts.get(replacement.span.entity, 0) + 1
            self.veil.audit.record(
                "tokenize", tenant=self.tenant, scope=self.scope, count=len(found),
                entities=[f"{entity}:{count}" for entity, count in sorted(counts.items())],
            )  # fmt: skip

    # -- restore ----------------------------------------------------------------------------

    def value_of(self, token: str) -> str | None:
        """The value of a token in this scope, or None (unknown, erased, expired, other scope)."""
        cached = self._values.get(token)
        if cached is not None:
            return cached
        record = self.veil.vault.lookup(self.tenant, self.scope, token)
        if record is None:
            return None
        if record.tenant != self.tenant or record.scope != self.scope:  # pragma: no cover - backends filter
            return None
        plain = self.veil.keyring.decrypt(
            self.tenant, record.sealed, value_aad(self.tenant, self.scope, token), what=f"vault record {token}"
        )
        try:
            value = plain.decode("utf-8")
        except UnicodeDecodeError:  # pragma: no cover - authenticated, so only a bug could cause it
            raise IntegrityError(f"vault record {token} does not hold UTF-8 text") from None
        with self._lock:
            self._values[token] = value
        return value

    def _known_tokens(self) -> list[str]:
        return [record.token for record in self.veil.vault.records(self.tenant, self.scope)]

    def _bare_candidates(self) -> list[str]:
        """Tokens whose bare form (`EMAIL_1`) may be restored: those this session sent to the model
        (a model can only mangle what it saw), or, for a session that sent none, the scope's."""
        return list(self._sent) if self._sent else self._known_tokens()

    def restorer(self, *, lenient: bool = False, escape: Callable[[str], str] | None = None) -> Restorer:
        return Restorer(
            self.value_of, known=self._bare_candidates, lenient=lenient, escape=escape, literal_bare=self._literal_bare
        )

    def surrogate_restorer(self) -> SurrogateRestorer:
        """Surrogate style: a restorer of the surrogates this session sent (or the scope's)."""
        mapping = {}
        for token in self._bare_candidates():
            value = self.value_of(token)
            if value is not None:
                mapping[token] = value
        return SurrogateRestorer(mapping)

    def _restore_surrogates(self, text: str) -> Restored:
        restored, count = self.surrogate_restorer().restore(text)
        dropped = tuple(token for token in self._sent if token not in text)
        return Restored(restored, Drift(dropped=dropped), count)

    def restore_report(self, text: str, *, lenient: bool = False) -> Restored:
        """Restore a text, with the drift report against the tokens this session sent."""
        if self.veil.style == "surrogate":
            result = self._restore_surrogates(text)
        else:
            result = self.restorer(lenient=lenient).restore(text, expected=tuple(self._sent))
        self._audit_restore(result.count, result.drift)
        return result

    def _audit_restore(self, count: int, drift: Drift | None = None) -> None:
        if self.veil.audit_traffic and (count or (drift and not drift.clean)):
            details: dict[str, Any] = {"scope": self.scope, "count": count}
            if drift is not None:
                details.update(dropped=len(drift.dropped), altered=len(drift.altered), invented=len(drift.invented))
            self.veil.audit.record("restore", tenant=self.tenant, **details)

    def restore(self, value: Any, *, lenient: bool = False) -> Any:
        """Restore a text, a list of chat messages, or a JSON value. Unknown tokens raise
        TokenNotFound unless `lenient` (then they stay as written)."""
        restorer = self.restorer(lenient=lenient)
        surrogates = self.surrogate_restorer() if self.veil.style == "surrogate" else None
        total = 0

        def leaf(text: str, path: tuple[str | int, ...]) -> str:
            nonlocal total
            if surrogates is not None:
                restored_text, count = surrogates.restore(text)
                total += count
                return restored_text
            result = restorer.restore(text)
            total += result.count
            return result.text

        if isinstance(value, str):
            restored: Any = leaf(value, ())
        elif is_messages(value):
            restored = map_messages(value, leaf)
        else:
            restored = map_json(value, leaf, skip=frozenset())
        self._audit_restore(total)
        return restored

    def stream_restorer(
        self, *, lenient: bool = False, json_string: bool = False
    ) -> StreamingRestorer | SurrogateStreamingRestorer:
        """A restorer for a streamed answer: `feed(chunk) -> str`, then `flush() -> str`. With
        `json_string`, restored values are escaped for the inside of a JSON string (streamed
        tool-call arguments)."""
        escape = (lambda value: json.dumps(value, ensure_ascii=False)[1:-1]) if json_string else None
        if self.veil.style == "surrogate":
            return SurrogateStreamingRestorer(self.surrogate_restorer(), escape=escape)
        return StreamingRestorer(self.restorer(lenient=lenient, escape=escape), expected=tuple(self._sent))

    # -- the scope's mapping ---------------------------------------------------------------

    @property
    def sent_tokens(self) -> tuple[str, ...]:
        """Tokens this session put into anonymized output, in order of first use."""
        return tuple(self._sent)

    def mapping(self) -> dict[str, str]:
        """token → value for every live mapping of the scope (decrypts them all)."""
        out = {}
        for token in self._known_tokens():
            value = self.value_of(token)
            if value is None:  # pragma: no cover - expired between the two reads
                continue
            out[token] = value
        return out

    def require(self, token: str) -> str:
        """The value of a token, or TokenNotFound."""
        value = self.value_of(token)
        if value is None:
            # Quote only what has a token's shape: a value passed by mistake must not be echoed.
            shown = token if isinstance(token, str) and TOKEN_RE.fullmatch(token) else "(not a veil token)"
            raise TokenNotFound(f"token {shown} is not known in this scope")
        return value
