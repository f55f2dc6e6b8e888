"""Parquet inputs (extra `veil[parquet]`): shards are runs of row groups, read in record batches.

pyarrow is imported here only, when a run has a Parquet file: `import veil` never loads it.
Chosen columns must be string columns; a null stays null. Other columns are copied as they are,
with the file's schema. The parts of a file are joined by copying their row groups one at a time
into the output, so memory stays bounded by a row group.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from veil.errors import ConfigError, InputError

if TYPE_CHECKING:
    from veil.batch.formats import Context

READ_ROWS = 1024


def pyarrow() -> Any:
    """The pyarrow modules, or an error naming the extra."""
    try:
        import pyarrow as pa  # noqa: PLC0415
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "pyarrow":
            raise
        raise ConfigError("Parquet files need pyarrow: pip install 'veil[parquet]'") from None
    return pa, pq


def _open(path: str) -> Any:
    _, pq = pyarrow()
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError …: all mean "not readable Parquet"
        raise InputError(f"{Path(path).name}: not a readable Parquet file ({type(exc).__name__})") from None


def row_group_ranges(path: str, shard_bytes: int) -> list[tuple[int, int, int]]:
    """(first row group, end row group, first row) of each shard: row groups gathered up to
    `shard_bytes` of uncompressed data."""
    metadata = _open(path).metadata
    ranges: list[tuple[int, int, int]] = []
    start, size, first_row, rows = 0, 0, 0, 0
    for group in range(metadata.num_row_groups):
        size += metadata.row_group(group).total_byte_size
        rows += metadata.row_group(group).num_rows
        if size >= shard_bytes:
            ranges.append((start, group + 1, first_row))
            start, size, first_row = group + 1, 0, rows
    if start < metadata.num_row_groups or not ranges:
        ranges.append((start, metadata.num_row_groups, first_row))
    return ranges


def string_columns(path: str) -> list[str]:
    pa, _ = pyarrow()
    schema = _open(path).schema_arrow
    return [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]


def process_parquet(context: Context, part: Path | None) -> None:
    """Anonymize into the Parquet file `part`, or (scan: `part` is None) write JSON lines."""
    pa, pq = pyarrow()
    shard = context.shard
    source = _open(shard.file.path)
    columns = context.columns()
    writer = pq.ParquetWriter(str(part), source.schema_arrow) if part is not None else None
    row = shard.first_line
    try:
        groups = list(range(shard.start, shard.end))
        for batch in source.iter_batches(batch_size=READ_ROWS, row_groups=groups) if groups else []:
            table = pa.Table.from_batches([batch])
            values = {column: table.column(column).to_pylist() for column in columns}
            languages = row_languages(table, columns)
            spans: dict[str, list[list[Any]]] = {column: [[] for _ in range(table.num_rows)] for column in columns}
            for first in range(0, table.num_rows, context.options.batch_rows):
                end = min(table.num_rows, first + context.options.batch_rows)
                _process_rows(context, values, languages, spans, start=first, end=end)
            context.stats.documents += table.num_rows
            if writer is not None:
                for column in columns:
                    index = table.schema.get_field_index(column)
                    array = string_array(pa, values[column], table.schema.field(index).type)
                    table = table.set_column(index, table.schema.field(index), array)
                writer.write_table(table)
            else:
                for offset in range(table.num_rows):
                    context.scan_line(("row", row + offset), {c: spans[c][offset] for c in columns})
            row += table.num_rows
    finally:
        if writer is not None:
            writer.close()


def row_languages(table: Any, columns: Sequence[str]) -> list[Any]:
    """Each row's `language` column value (en, fr, auto; anything else means the run's), if any."""
    if "language" in table.schema.names and "language" not in columns:
        return list(table.column("language").to_pylist())
    return [None] * table.num_rows


def _process_rows(context: Context, values: dict[str, list[Any]], languages: list[Any],
                  spans: dict[str, list[list[Any]]], *, start: int, end: int) -> None:  # fmt: skip
    where = [(column, i) for i in range(start, end) for column in values if values[column][i]]
    chosen = [languages[i] for _, i in where]
    results = context.processor.process([values[c][i] for c, i in where], chosen, context.session)
    for (column, i), result in zip(where, results, strict=True):
        values[column][i] = result.text
        spans[column][i] = list(result.spans)
        context.stats.add_spans(result.spans)


def string_array(pa: Any, values: list[str | None], kind: Any) -> Any:
    """A string (or large string) array built from its buffers: `pa.array` would import pandas
    (seconds of start-up per worker) only to ask whether the list is a pandas object."""
    from array import array  # noqa: PLC0415

    offsets = array("q" if pa.types.is_large_string(kind) else "i", [0])
    data = bytearray()
    validity = bytearray((len(values) + 7) // 8)
    nulls = 0
    for index, value in enumerate(values):
        if value is None:
            nulls += 1
        else:
            data += value.encode("utf-8")
            validity[index >> 3] |= 1 << (index & 7)
        offsets.append(len(data))
    bitmap = pa.py_buffer(bytes(validity)) if nulls else None
    buffers = [bitmap, pa.py_buffer(offsets.tobytes()), pa.py_buffer(bytes(data))]
    return pa.Array.from_buffers(kind, len(values), buffers, null_count=nulls)


def join_parts(parts: list[Path], target: Path) -> None:
    """One Parquet file from the parts of a file, a row group at a time."""
    _, pq = pyarrow()
    writer = None
    try:
        for part in parts:
            source = pq.ParquetFile(str(part))
            if writer is None:
                writer = pq.ParquetWriter(str(target), source.schema_arrow)
            for group in range(source.num_row_groups):
                writer.write_table(source.read_row_group(group))
    finally:
        if writer is not None:
            writer.close()
