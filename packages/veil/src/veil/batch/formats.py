"""Reading a shard, processing its documents in batches, writing its part file: per format.

Everything streams: a shard is read a line (or a Parquet batch) at a time, processed in batches
of `BatchOptions.batch_rows` documents and written as it goes, so memory does not grow with the
input. A malformed row is reported by file and line (Parquet: row) with the reason, never with
its content (it may hold personal data), and then stops the run or is left out of the output
(`on_error`): a row veil could not read is never copied through unanonymized.

A `language` field or column (en, fr or auto), when present, sets each row's language; other
rows are read in `BatchOptions.language`.

Outputs:
- anonymize: the input's format and layout, chosen fields or columns replaced;
- scan: one JSON line per document, `{"source", "line" | "row", "spans": {field: [span, ...]}}`,
  span offsets counted in characters of that field (for text files, of that document: a run of
  lines of at most `TEXT_DOCUMENT_CHARS`, cut at a blank line where possible).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from veil.batch.processor import Processor, span_record
from veil.batch.shards import Shard, csv_header
from veil.entities import LANGUAGES
from veil.errors import InputError

MAX_ERRORS_KEPT = 100
TEXT_DOCUMENT_CHARS = 64 << 10
TEXT_DOCUMENT_HARD_CHARS = 1 << 20


@dataclass
class ShardStats:
    """What processing a shard found: counts only, never values."""

    documents: int = 0
    malformed: int = 0
    entities: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add_spans(self, spans: Any) -> None:
        for span in spans:
            self.entities[span.entity] = self.entities.get(span.entity, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {"documents": self.documents, "malformed": self.malformed, "entities": self.entities,
                "errors": self.errors}  # fmt: skip


class Malformed(Exception):
    """A row that cannot be read; the message says where and why, never what it held."""


class Context:
    """A shard being processed: the processor, a session, the part file and the statistics."""

    def __init__(self, shard: Shard, processor: Processor, out: IO[str]) -> None:
        self.shard = shard
        self.processor = processor
        self.options = processor.options
        self.session = processor.session()
        self.out = out
        self.stats = ShardStats()

    def malformed(self, where: str, reason: str) -> None:
        message = f"{self.shard.file.name}, {where}: {reason}"
        if self.options.on_error == "stop":
            raise InputError(message)
        self.stats.malformed += 1
        if len(self.stats.errors) < MAX_ERRORS_KEPT:
            self.stats.errors.append(message)

    def columns(self) -> tuple[str, ...]:
        return self.options.columns or ("text",)

    def scan_line(
        self, where: tuple[str, int], spans: dict[str, list[Any]], extra: dict[str, Any] | None = None
    ) -> None:
        record: dict[str, Any] = {"source": self.shard.file.name, where[0]: where[1]}
        if extra:
            record.update(extra)
        record["spans"] = {name: [span_record(s) for s in found] for name, found in spans.items()}
        self.out.write(json.dumps(record, ensure_ascii=False) + "\n")


def numbered_lines(shard: Shard) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) over the shard's byte range, read a line at a time."""
    with open(shard.file.path, "rb") as handle:
        handle.seek(shard.start)
        position, number = shard.start, shard.first_line
        while position < shard.end:
            line = handle.readline()
            if not line:
                break
            position += len(line)
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]  # a byte order mark says UTF-8; it is not part of the text
            yield number, line
            number += 1


def _decode(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed(f"not UTF-8 text (invalid byte at column {exc.start + 1})") from None


# -- JSON Lines ---------------------------------------------------------------------------------


def process_jsonl(context: Context) -> None:
    columns = context.columns()
    batch: list[tuple[int, dict[str, Any], str | None]] = []
    for number, raw in numbered_lines(context.shard):
        if not raw.strip():
            continue
        try:
            row = json.loads(_decode(raw.rstrip(b"\r\n")))
            if not isinstance(row, dict):
                raise Malformed(f"expected a JSON object, got {type(row).__name__}")
            for column in columns:
                if row.get(column) is not None and not isinstance(row[column], str):
                    raise Malformed(f'field "{column}" must be a string, got {type(row[column]).__name__}')
            language = row.get("language")
            if language is not None and language not in (*LANGUAGES, "auto"):
                raise Malformed(f"language must be en, fr or auto, got {str(language)[:8]!r}")
        except json.JSONDecodeError as exc:
            context.malformed(f"line {number}", f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except Malformed as exc:
            context.malformed(f"line {number}", str(exc))
            continue
        batch.append((number, row, language))
        if len(batch) >= context.options.batch_rows:
            _flush_jsonl(context, batch, columns)
            batch = []
    _flush_jsonl(context, batch, columns)


def _flush_jsonl(
    context: Context, batch: list[tuple[int, dict[str, Any], str | None]], columns: tuple[str, ...]
) -> None:
    if not batch:
        return
    where = [(i, column) for i, (_, row, _) in enumerate(batch) for column in columns if row.get(column)]
    results = context.processor.process(
        [batch[i][1][column] for i, column in where], [batch[i][2] for i, _ in where], context.session
    )
    found: list[dict[str, list[Any]]] = [{} for _ in batch]
    for (i, column), result in zip(where, results, strict=True):
        found[i][column] = list(result.spans)
        context.stats.add_spans(result.spans)
        if context.options.action == "anonymize":
            batch[i][1][column] = result.text
    for (number, row, _), spans in zip(batch, found, strict=True):
        context.stats.documents += 1
        if context.options.action == "anonymize":
            context.out.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            extra = {"id": row["id"]} if "id" in row else None
            context.scan_line(("line", number), {c: spans.get(c, []) for c in columns}, extra)


# -- CSV ----------------------------------------------------------------------------------------


def _csv_lines(context: Context) -> Iterator[str]:
    """The shard's lines as text; invalid UTF-8 kept as surrogates, so the row can be refused."""
    for _, raw in numbered_lines(context.shard):
        yield raw.decode("utf-8", errors="surrogateescape")


def process_csv(context: Context) -> None:
    shard = context.shard
    header = csv_header(shard.file, shard.header_end)
    columns = context.columns()
    indexes = [header.index(column) for column in columns]
    language = header.index("language") if "language" in header and "language" not in columns else None
    writer = csv.writer(context.out, lineterminator="\n")
    if shard.first and context.options.action == "anonymize":
        writer.writerow(header)
    reader = csv.reader(_csv_lines(context))
    batch: list[tuple[int, list[str]]] = []
    previous = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            line = shard.first_line + previous
            previous = reader.line_num
            context.malformed(f"line {line}", f"not valid CSV ({exc})")
            continue
        line, previous = shard.first_line + previous, reader.line_num
        if not row:
            continue
        if len(row) != len(header):
            context.malformed(f"line {line}", f"expected {len(header)} fields, got {len(row)}")
            continue
        if any("\udc80" <= ch <= "\udcff" for cell in row for ch in cell):
            context.malformed(f"line {line}", "not UTF-8 text")
            continue
        batch.append((line, row))
        if len(batch) >= context.options.batch_rows:
            _flush_csv(context, batch, columns, indexes, language=language, writer=writer)
            batch = []
    _flush_csv(context, batch, columns, indexes, language=language, writer=writer)


def _flush_csv(context: Context, batch: list[tuple[int, list[str]]], columns: tuple[str, ...], indexes: list[int],
               *, language: int | None, writer: Any) -> None:  # fmt: skip
    if not batch:
        return
    where = [(i, c) for i, (_, row) in enumerate(batch) for c in range(len(columns)) if row[indexes[c]]]
    languages = [batch[i][1][language] if language is not None else None for i, _ in where]
    results = context.processor.process([batch[i][1][indexes[c]] for i, c in where], languages, context.session)
    found: list[dict[str, list[Any]]] = [{} for _ in batch]
    for (i, c), result in zip(where, results, strict=True):
        found[i][columns[c]] = list(result.spans)
        context.stats.add_spans(result.spans)
        batch[i][1][indexes[c]] = result.text
    for (line, row), spans in zip(batch, found, strict=True):
        context.stats.documents += 1
        if context.options.action == "anonymize":
            writer.writerow(row)
        else:
            context.scan_line(("line", line), {c: spans.get(c, []) for c in columns})


# -- plain text ---------------------------------------------------------------------------------


def _text_documents(context: Context) -> Iterator[tuple[int, str]]:
    """(first line, text) of each document: lines gathered up to TEXT_DOCUMENT_CHARS and cut at a
    blank line, or at any line end past TEXT_DOCUMENT_HARD_CHARS (so that a value spread over
    two lines, an address, is rarely cut in two)."""
    lines: list[str] = []
    size = 0
    first = 0
    for number, raw in numbered_lines(context.shard):
        try:
            line = _decode(raw)
        except Malformed as exc:
            context.malformed(f"line {number}", str(exc))
            continue
        if not lines:
            first = number
        lines.append(line)
        size += len(line)
        if (size >= TEXT_DOCUMENT_CHARS and not line.strip()) or size >= TEXT_DOCUMENT_HARD_CHARS:
            yield first, "".join(lines)
            lines, size = [], 0
    if lines:
        yield first, "".join(lines)


def process_text(context: Context) -> None:
    language = context.options.language
    for first, text in _text_documents(context):
        (result,) = context.processor.process([text], [language], context.session)
        context.stats.documents += 1
        context.stats.add_spans(result.spans)
        if context.options.action == "anonymize":
            context.out.write(result.text)
        else:
            context.scan_line(("line", first), {"text": list(result.spans)})


PROCESSORS = {"jsonl": process_jsonl, "csv": process_csv, "text": process_text}
