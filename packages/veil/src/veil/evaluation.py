"""Evaluation against gold data: per-entity precision, recall and F1, exact and overlap.

Gold format (JSON Lines): `{"id", "text", "language", "spans": [{"start", "end", "entity"}]}`.
A prediction matches a gold span when the types correspond and the spans overlap (overlap
scores) or coincide (exact scores). Types correspond when equal, or by `COMPATIBLE`: an ADDRESS
may be found as a LOCATION or by the postal code inside it, a DATE_OF_BIRTH as a DATE.
Used by `veil eval` and by benchmarks/accuracy.py, which runs it for veil and Presidio alike.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from veil.errors import InputError

COMPATIBLE: Mapping[str, frozenset[str]] = {
    "ADDRESS": frozenset({"LOCATION", "CA_POSTAL_CODE"}),
    "DATE_OF_BIRTH": frozenset({"DATE"}),
}


@dataclass(frozen=True, slots=True)
class GoldSpan:
    start: int
    end: int
    entity: str


@dataclass(frozen=True, slots=True)
class GoldDocument:
    id: str
    text: str
    language: str
    spans: tuple[GoldSpan, ...]


@dataclass(frozen=True, slots=True)
class Predicted:
    start: int
    end: int
    entity: str


def corresponds(gold_entity: str, predicted_entity: str) -> bool:
    return predicted_entity == gold_entity or predicted_entity in COMPATIBLE.get(gold_entity, ())


def read_gold(path: str | Path) -> list[GoldDocument]:
    """Read a gold JSON Lines file; a malformed line raises InputError naming its number."""
    documents = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text = row["text"]
                spans = tuple(GoldSpan(int(s["start"]), int(s["end"]), str(s["entity"])) for s in row.get("spans", []))
                if not isinstance(text, str):
                    raise TypeError("text is not a string")
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{path}, line {number}: not a gold record ({type(exc).__name__}: {exc})") from None
            for span in spans:
                if not 0 <= span.start < span.end <= len(text):
                    raise InputError(f"{path}, line {number}: span {span.start}..{span.end} lies outside the text")
            documents.append(GoldDocument(str(row.get("id", number)), text, str(row.get("language") or "en"), spans))
    return documents


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class Report:
    """Scores of one system on one gold set."""

    overlap: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    exact: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    by_language: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(gold entity, predicted entity) for overlapping spans whose types do not correspond."""
    pii_chars: int = 0
    pii_chars_covered: int = 0
    documents: int = 0

    def micro(self, which: str = "overlap", entities: Iterable[str] | None = None) -> Counts:
        table = self.overlap if which == "overlap" else self.exact
        keep = set(entities) if entities is not None else None
        total = Counts()
        for entity, counts in table.items():
            if keep is None or entity in keep:
                total.tp += counts.tp
                total.fp += counts.fp
                total.fn += counts.fn
        return total

    @property
    def char_recall(self) -> float:
        return self.pii_chars_covered / self.pii_chars if self.pii_chars else 0.0


def _match(gold: Sequence[GoldSpan], predicted: Sequence[Predicted], exact: bool) -> tuple[set[int], set[int]]:
    """Indices of gold spans found and of predictions that found one (one-to-one, greedy)."""
    found_gold: set[int] = set()
    used_pred: set[int] = set()
    for gi, g in enumerate(gold):
        for pi, p in enumerate(predicted):
            if pi in used_pred or not corresponds(g.entity, p.entity):
                continue
            hit = (p.start == g.start and p.end == g.end) if exact else (p.start < g.end and g.start < p.end)
            if hit:
                found_gold.add(gi)
                used_pred.add(pi)
                break
    return found_gold, used_pred


def evaluate(
    documents: Iterable[GoldDocument],
    predict: Callable[[GoldDocument], Sequence[Predicted]],
    *,
    entities: Iterable[str] | None = None,
) -> Report:
    """Score `predict` on the documents. `entities` restricts scoring to those gold types
    (predictions of other types are then ignored, unless they correspond to a kept gold type)."""
    keep = frozenset(entities) if entities is not None else None
    report = Report()

    def kept(entity: str) -> bool:
        return keep is None or entity in keep or any(entity in COMPATIBLE.get(k, ()) for k in keep)

    for document in documents:
        report.documents += 1
        gold = [g for g in document.spans if keep is None or g.entity in keep]
        predicted = [p for p in predict(document) if kept(p.entity)]
        for exact, table in ((False, report.overlap), (True, report.exact)):
            found, used = _match(gold, predicted, exact)
            for gi, g in enumerate(gold):
                table[g.entity].tp += gi in found
                table[g.entity].fn += gi not in found
                if not exact:
                    report.by_language[document.language].tp += gi in found
                    report.by_language[document.language].fn += gi not in found
            for pi, p in enumerate(predicted):
                if pi not in used:
                    table[_scored_as(p, gold)].fp += 1
                    if not exact:
                        report.by_language[document.language].fp += 1
        for p in predicted:
            for g in gold:
                if p.start < g.end and g.start < p.end and not corresponds(g.entity, p.entity):
                    report.confusion[(g.entity, p.entity)] += 1
        covered = [False] * len(document.text)
        for p in predicted:
            for i in range(p.start, min(p.end, len(covered))):
                covered[i] = True
        for g in gold:
            report.pii_chars += g.end - g.start
            report.pii_chars_covered += sum(covered[g.start : g.end])
    return report


def _scored_as(prediction: Predicted, gold: Sequence[GoldSpan]) -> str:
    """A false positive of a compatible type counts against the gold type it resembles."""
    for entity, compatible in COMPATIBLE.items():
        if prediction.entity in compatible and any(g.entity == entity for g in gold):
            return entity if prediction.entity != "CA_POSTAL_CODE" else prediction.entity
    return prediction.entity


def format_report(report: Report, *, title: str = "") -> str:
    """The per-entity table `veil eval` prints."""
    lines = []
    if title:
        lines.append(title)
    header = f"{'entity':<22}{'support':>8}{'P':>8}{'R':>8}{'F1':>8}{'exact P':>9}{'exact R':>9}{'exact F1':>9}"
    lines.append(header)
    lines.append("-" * len(header))
    for entity in sorted(set(report.overlap) | set(report.exact)):
        o, e = report.overlap[entity], report.exact[entity]
        lines.append(
            f"{entity:<22}{o.tp + o.fn:>8}{o.precision:>8.3f}{o.recall:>8.3f}{o.f1:>8.3f}"
            f"{e.precision:>9.3f}{e.recall:>9.3f}{e.f1:>9.3f}"
        )
    lines.append("-" * len(header))
    o, e = report.micro("overlap"), report.micro("exact")
    lines.append(
        f"{'micro':<22}{o.tp + o.fn:>8}{o.precision:>8.3f}{o.recall:>8.3f}{o.f1:>8.3f}"
        f"{e.precision:>9.3f}{e.recall:>9.3f}{e.f1:>9.3f}"
    )
    for language, counts in sorted(report.by_language.items()):
        lines.append(
            f"{'micro ' + language:<22}{counts.tp + counts.fn:>8}{counts.precision:>8.3f}"
            f"{counts.recall:>8.3f}{counts.f1:>8.3f}"
        )
    lines.append(f"char-level PII recall: {report.char_recall:.3f} over {report.documents} documents")
    if report.confusion:
        lines.append("confusions (gold → predicted, overlapping, types differ):")
        for (gold, predicted), count in report.confusion.most_common(10):
            lines.append(f"  {gold} → {predicted}: {count}")
    return "\n".join(lines)


def iter_predictions(spans: Iterable[object]) -> Iterator[Predicted]:
    """Predicted spans from any objects with start, end and entity attributes (veil's Span)."""
    for span in spans:
        yield Predicted(span.start, span.end, str(span.entity))  # type: ignore[attr-defined]
