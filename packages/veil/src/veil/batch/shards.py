"""Inputs and shards: which files a run reads, and how each is cut into independent pieces.

A shard is a byte range of a line-based file (JSON Lines, CSV, text) that begins and ends on a
record boundary, or a run of row groups of a Parquet file. Shards are the unit of parallel work,
of checkpointing and of retry: each is processed on its own into a part file, and the parts of a
file are joined in order. The plan depends only on the inputs and the shard size, never on the
number of workers, so every `--jobs` gives the same output.

Cutting scans each file once, counting line ends (the first line of every shard is known, for
error messages) and, for CSV, double quotes: a line end is a record boundary only outside a
quoted field, that is after an even number of quotes (RFC 4180 escapes a quote by doubling it).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from veil.errors import ConfigError, InputError

Format = Literal["jsonl", "csv", "parquet", "text"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "parquet", "text")
EXTENSIONS: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "text",
    ".text": "text",
    ".md": "text",
    ".log": "text",
}
DEFAULT_SHARD_BYTES = 1 << 20
_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class InputFile:
    """A file to process: where it is, its name in the output, its format, and a fingerprint."""

    path: str
    name: str
    format: Format
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class Shard:
    """A piece of one input file, processed on its own into a part file.

    `start`/`end` are byte offsets (Parquet: row group numbers, end excluded); `first_line` is
    the 1-based line number at `start` (Parquet: the 0-based number of the first row)."""

    index: int
    file: InputFile
    start: int
    end: int
    first_line: int
    first: bool
    header_end: int = 0
    """CSV: where the header record ends (every shard reads the header from the file's start)."""

    @property
    def size(self) -> int:
        return self.file.size if self.file.format == "parquet" else self.end - self.start


def find_inputs(paths: Sequence[str | Path], format: Format | None = None) -> list[InputFile]:
    """The files named and those under the folders named (hidden ones left out), sorted by output
    name. A file whose format cannot be told from its extension is an error, unless `format`."""
    found: dict[str, InputFile] = {}
    for given in paths:
        root = Path(given)
        if root.is_dir():
            files = sorted(
                p for p in root.rglob("*") if p.is_file() and not any(part.startswith(".") for part in
                                                                   p.relative_to(root).parts)
            )  # fmt: skip
            pairs = [(p, p.relative_to(root).as_posix()) for p in files]
        elif root.is_file():
            pairs = [(root, root.name)]
        else:
            raise InputError(f"{root}: no such file or folder")
        for path, name in pairs:
            kind = format or EXTENSIONS.get(path.suffix.lower())
            if kind is None:
                raise InputError(
                    f"{path}: cannot tell its format from the extension; give --format "
                    f"({', '.join(FORMATS)}) or move it out of the folder"
                )
            if name in found:
                raise InputError(f"{path}: two inputs would both be written as {name}; run them separately")
            stat = path.stat()
            found[name] = InputFile(str(path.resolve()), name, kind, stat.st_size, stat.st_mtime_ns)
    if not found:
        raise InputError("no input files (the folders given are empty)")
    return [found[name] for name in sorted(found)]


def plan(files: Sequence[InputFile], shard_bytes: int = DEFAULT_SHARD_BYTES) -> list[Shard]:
    """Every file's shards, numbered in output order."""
    if shard_bytes < 1:
        raise ConfigError("the shard size must be at least one byte")
    shards: list[Shard] = []
    for file in files:
        if file.format == "parquet":
            from veil.batch.parquet import row_group_ranges  # noqa: PLC0415 - pyarrow only for Parquet

            ranges = row_group_ranges(file.path, shard_bytes)
            header_end = 0
        else:
            header_end = csv_header_end(file) if file.format == "csv" else 0
            ranges = list(_cut(file.path, header_end, shard_bytes, quoted=file.format == "csv"))
        for number, (start, end, first_line) in enumerate(ranges):
            shards.append(Shard(len(shards), file, start, end, first_line, number == 0, header_end))
    return shards


def _cut(path: str, start: int, shard_bytes: int, *, quoted: bool) -> Iterator[tuple[int, int, int]]:
    """(start, end, first line) of each shard of a line-based file, from byte `start` on."""
    with open(path, "rb") as handle:
        lines = 1 + handle.read(start).count(b"\n")
        offset = shard_start = start
        shard_line, parity, target = lines, 0, start + shard_bytes
        while block := handle.read(_BLOCK):
            position = 0
            while (candidate := max(position, target - 1 - offset)) < len(block):
                newline = block.find(b"\n", candidate)
                if newline < 0:
                    break
                if quoted:
                    parity ^= block.count(b'"', position, newline) & 1
                lines += block.count(b"\n", position, newline + 1)
                position = newline + 1
                if parity == 0:  # outside a quoted field: a record ends here
                    end = offset + position
                    yield shard_start, end, shard_line
                    shard_start, shard_line, target = end, lines, end + shard_bytes
            if quoted:
                parity ^= block.count(b'"', position) & 1
            lines += block.count(b"\n", position)
            offset += len(block)
        if offset > shard_start:
            yield shard_start, offset, shard_line


def csv_header_end(file: InputFile) -> int:
    """Byte offset where a CSV file's header record ends (it may hold quoted line ends)."""
    with open(file.path, "rb") as handle:
        head = b""
        while True:
            block = handle.read(_BLOCK)
            head += block
            position = 0
            while (newline := head.find(b"\n", position)) >= 0:
                if head.count(b'"', 0, newline) % 2 == 0:
                    return newline + 1
                position = newline + 1
            if not block:
                if head.strip():
                    return len(head)
                raise InputError(f"{file.name}: the CSV file is empty (no header row)")


def csv_header(file: InputFile, header_end: int) -> list[str]:
    """The column names of a CSV file."""
    with open(file.path, "rb") as handle:
        raw = handle.read(header_end)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{file.name}, line 1: the header is not UTF-8 text") from None
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if len(rows) != 1 or not rows[0]:
        raise InputError(f"{file.name}, line 1: cannot read the CSV header")
    return rows[0]


def check_columns(files: Sequence[InputFile], shards: Sequence[Shard], columns: Sequence[str]) -> None:
    """Refuse, before any work, a CSV or Parquet input that lacks a chosen column."""
    headers = {shard.file.name: shard.header_end for shard in shards if shard.first}
    for file in files:
        if file.format == "csv":
            names = csv_header(file, headers.get(file.name, 0) or csv_header_end(file))
        elif file.format == "parquet":
            from veil.batch.parquet import string_columns  # noqa: PLC0415

            names = string_columns(file.path)
        else:
            continue
        wanted = list(columns) or ["text"]
        missing = [column for column in wanted if column not in names]
        if missing:
            hint = "" if columns else "; choose the columns to anonymize with --columns"
            kind = "string columns" if file.format == "parquet" else "columns"
            raise ConfigError(
                f"{file.name}: no column {', '.join(missing)} (its {kind}: {', '.join(names) or 'none'}){hint}"
            )


def fingerprint(files: Sequence[InputFile]) -> list[list[object]]:
    """What a checkpoint records of its inputs: a changed file makes the checkpoint stale."""
    return [[file.name, file.path, file.size, file.mtime_ns] for file in files]


def same_file(path: str, other: str) -> bool:
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False
