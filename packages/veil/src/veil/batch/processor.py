"""What one worker does to a batch of texts: detect, then redact or tokenize.

A `Processor` is built once per worker (a process of `veil anonymize --jobs N`, or a Ray actor):
the engine, its NER models and the vault connection are loaded in `__init__` and reused for
every batch. The CLI's workers and `veil.batch.ray` share this class, so the same input gives
byte-identical output whichever runs it.

Tokens: with a scope, every worker opens the same vault (a SQLite file shared by the processes
of one machine, PostgreSQL across machines) and asks it for each value's token by blind index;
the vault's uniqueness constraints make one value one token whatever worker sees it first.
A fresh `Session` is used per shard or batch, so its caches stay bounded by the shard's size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from veil.detect.engine import Engine
from veil.detect.policy import Policy
from veil.entities import LANGUAGES, LanguageOption, Span
from veil.errors import ConfigError
from veil.tokens import redact

if TYPE_CHECKING:
    from veil.session import Session, Veil

Action = Literal["anonymize", "scan"]
OnError = Literal["stop", "skip"]
VaultSpec = str | Path | Callable[[], "Veil"]
"""A vault directory (SQLite + local key file, as `Veil.open`), or a picklable callable returning
a `Veil` (PostgreSQL and a key provider, for workers on several machines)."""


@dataclass(frozen=True)
class BatchOptions:
    """What to do to every document of a batch run; picklable, sent once to each worker."""

    action: Action = "anonymize"
    policy: Policy = field(default_factory=Policy)
    language: LanguageOption = "auto"
    scope: str | None = None
    """Reversible anonymization: tokens kept in the vault under this scope. None: redaction."""
    subject: str | None = None
    vault: VaultSpec | None = None
    tenant: str = "default"
    columns: tuple[str, ...] = ()
    """The fields (JSON Lines), columns (CSV, Parquet) to process; empty: the format's default."""
    on_error: OnError = "stop"
    batch_rows: int = 64

    def __post_init__(self) -> None:
        if self.action not in ("anonymize", "scan"):
            raise ConfigError(f"action must be anonymize or scan, got {self.action!r}")
        if self.on_error not in ("stop", "skip"):
            raise ConfigError(f"on_error must be stop or skip, got {self.on_error!r}")
        if self.language not in (*LANGUAGES, "auto"):
            raise ConfigError(f"language must be en, fr or auto, got {self.language!r}")
        if self.scope is not None and self.action == "scan":
            raise ConfigError("a scan issues no tokens: drop the scope")
        if self.scope is not None and self.vault is None:
            raise ConfigError("reversible anonymization (a scope) needs a vault: give its directory")
        if self.subject is not None and self.scope is None:
            raise ConfigError("a subject files tokens in the vault: it needs a scope")
        if self.batch_rows < 1:
            raise ConfigError("batch_rows must be at least 1")


@dataclass(frozen=True, slots=True)
class Result:
    """One text processed: its output (redacted or tokenized; the input for a scan) and spans."""

    text: str
    spans: tuple[Span, ...]


class Processor:
    """Engine (and vault) of one worker, loaded once; `process` runs a batch of texts."""

    def __init__(self, options: BatchOptions) -> None:
        self.options = options
        self.engine = Engine(options.policy, language=options.language)
        self.veil: Veil | None = None
        if options.scope is not None:
            self.veil = self._open_veil(options)

    def _open_veil(self, options: BatchOptions) -> Veil:
        from veil.session import Veil  # noqa: PLC0415 - crypto and vault only for reversible runs

        if callable(options.vault):
            veil = options.vault()
            if not isinstance(veil, Veil):
                raise ConfigError(f"the vault callable must return a veil.Veil, got {type(veil).__name__}")
            return veil.with_engine(self.engine)
        root = Path(str(options.vault))
        if not (root / "keys.json").exists():
            raise ConfigError(f"no vault in {root}: create one with `veil keys init --vault {root}`")
        # Traffic is audited once per shard by the runner (counts only), not once per document.
        return Veil.open(root, engine=self.engine, tenant=options.tenant, audit_traffic=False)

    def session(self) -> Session | None:
        """A fresh session on the run's scope (None when redacting): one per shard or batch."""
        if self.veil is None or self.options.scope is None:
            return None
        return self.veil.session(self.options.scope, subject=self.options.subject)

    def process(
        self, texts: Sequence[str], languages: Sequence[str | None], session: Session | None = None
    ) -> list[Result]:
        """Each text's result, in order. Texts of one language are detected together."""
        results: list[Result | None] = [None] * len(texts)
        by_language: dict[str | None, list[int]] = {}
        for index, language in enumerate(languages):
            by_language.setdefault(language if language in LANGUAGES else None, []).append(index)
        for language, indices in by_language.items():
            chosen: Any = language
            batch = [texts[i] for i in indices]
            if self.options.action == "anonymize" and session is not None:
                for i, anonymized in zip(indices, session.anonymize_texts(batch, language=chosen), strict=True):
                    results[i] = Result(anonymized.text, anonymized.spans)
                continue
            for i, spans in zip(indices, self.engine.detect_many(batch, chosen), strict=True):
                output = redact(texts[i], spans) if self.options.action == "anonymize" else texts[i]
                results[i] = Result(output, tuple(spans))
        return [result for result in results if result is not None]

    def audit(self, session: Session | None, counts: dict[str, int], documents: int) -> None:
        """One audit record per shard: how many values of which entity were tokenized (no values)."""
        if self.veil is None or session is None or not counts:
            return
        self.veil.audit.record(
            "tokenize", tenant=session.tenant, scope=session.scope, count=sum(counts.values()),
            entities=[f"{entity}:{count}" for entity, count in sorted(counts.items())], documents=documents,
        )  # fmt: skip

    def close(self) -> None:
        if self.veil is not None:
            self.veil.close()


def span_record(span: Span) -> dict[str, Any]:
    """A span as written in scan output (offsets into the processed field, in characters)."""
    return {"start": span.start, "end": span.end, "entity": span.entity, "score": round(span.score, 4)}
