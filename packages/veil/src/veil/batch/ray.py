"""Anonymize or scan a Ray Data dataset (extra `veil[ray]`): corpora beyond one machine.

    import ray
    from veil.batch.ray import anonymize_dataset

    ds = ray.data.read_parquet("s3://corpus/")
    out = anonymize_dataset(ds, columns=["body"], scope="corpus-2026", vault=open_veil)
    out.write_parquet("s3://corpus-anonymized/")

`map_batches` runs a pool of actors, each holding one `Processor`: the engine and its NER models
are loaded once per actor, not per batch. Batches travel as Arrow tables; the chosen columns are
replaced, the others untouched. The same `Processor` runs `veil anonymize --jobs N`, so a row
gives the same bytes either way.

Tokens are consistent across actors and machines because every actor asks one shared vault for
the token of each value by its blind index: `vault` is a zero-argument callable returning a
`Veil` over PostgreSQL (pickled to every actor), or, on a single machine only, a vault directory
(SQLite). A SQLite directory on a cluster of several nodes would give each node its own vault,
so it is refused there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from veil.batch.processor import BatchOptions, Processor, VaultSpec
from veil.detect.policy import Policy
from veil.entities import LanguageOption
from veil.errors import ConfigError, InputError

SPANS_SUFFIX = "_spans"


def _ray() -> Any:
    try:
        import ray  # noqa: PLC0415
        import ray.data  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "ray":
            raise
        raise ConfigError("veil.batch.ray needs Ray Data: pip install 'veil[ray]'") from None
    return ray


class DatasetWorker:
    """The callable class Ray instantiates once per actor (models loaded once), then calls per batch."""

    def __init__(self, options: BatchOptions) -> None:
        self.options = options
        self.processor = Processor(options)

    def __call__(self, batch: Any) -> Any:
        from veil.batch.parquet import pyarrow, row_languages, string_array  # noqa: PLC0415

        pa, _ = pyarrow()
        session = self.processor.session()
        columns = self.options.columns
        values = {column: batch.column(column).to_pylist() for column in columns}
        for column, column_values in values.items():
            for value in column_values:
                if value is not None and not isinstance(value, str):
                    raise InputError(f'column "{column}" holds a {type(value).__name__}, not text')
        where = [(column, i) for i in range(batch.num_rows) for column in columns if values[column][i]]
        languages = row_languages(batch, columns)
        results = self.processor.process([values[c][i] for c, i in where], [languages[i] for _, i in where], session)
        spans: dict[str, list[list[dict[str, Any]]]] = {c: [[] for _ in range(batch.num_rows)] for c in columns}
        counts: dict[str, int] = {}
        for (column, i), result in zip(where, results, strict=True):
            values[column][i] = result.text
            spans[column][i] = [_span(s) for s in result.spans]
            for span in result.spans:
                counts[span.entity] = counts.get(span.entity, 0) + 1
        self.processor.audit(session, counts, batch.num_rows)
        if self.options.action == "scan":
            kind = pa.list_(pa.struct([("start", pa.int64()), ("end", pa.int64()), ("entity", pa.string()),
                                       ("score", pa.float64())]))  # fmt: skip
            for column in columns:
                batch = batch.append_column(column + SPANS_SUFFIX, pa.array(spans[column], type=kind))
            return batch
        for column in columns:
            index = batch.schema.get_field_index(column)
            field = batch.schema.field(index)
            batch = batch.set_column(index, field, string_array(pa, values[column], field.type))
        return batch


def _span(span: Any) -> dict[str, Any]:
    return {"start": span.start, "end": span.end, "entity": span.entity, "score": round(span.score, 4)}


def _map(ds: Any, options: BatchOptions, concurrency: int | None, batch_size: int) -> Any:
    ray = _ray()
    if not options.columns:
        raise ConfigError("name the columns to process: columns=['text', ...]")
    names = ds.schema().names
    missing = [c for c in options.columns if c not in names]
    if missing:
        raise ConfigError(f"the dataset has no column {', '.join(missing)} (its columns: {', '.join(names)})")
    if options.action == "scan":
        clash = [c + SPANS_SUFFIX for c in options.columns if c + SPANS_SUFFIX in names]
        if clash:
            raise ConfigError(f"the dataset already has a column {', '.join(clash)}: rename it first")
    if options.scope is not None and not callable(options.vault) and _nodes(ray) > 1:
        raise ConfigError(
            "a vault directory (SQLite) serves one machine; on a cluster of several nodes pass "
            "vault=a callable returning a Veil over PostgreSQL, so every node shares one vault"
        )
    if concurrency is None:
        concurrency = max(1, int(ray.cluster_resources().get("CPU", 1)))
    return ds.map_batches(
        DatasetWorker,
        fn_constructor_args=(options,),
        batch_format="pyarrow",
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=1,
    )


def _nodes(ray: Any) -> int:
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def anonymize_dataset(
    ds: Any,
    *,
    columns: Sequence[str],
    scope: str | None = None,
    vault: VaultSpec | None = None,
    policy: Policy | None = None,
    language: LanguageOption = "auto",
    subject: str | None = None,
    tenant: str = "default",
    concurrency: int | None = None,
    batch_size: int = 256,
) -> Any:
    """The dataset with `columns` anonymized: redacted (`[EMAIL]`) without a scope, tokens
    (`{{EMAIL_1}}`) kept in `vault` under `scope` with one. Lazy, like every Ray Data transform.

    `concurrency` is the number of actors (default: one per CPU of the cluster)."""
    options = BatchOptions(action="anonymize", policy=policy or Policy(), language=language, scope=scope,
                           subject=subject, vault=vault, tenant=tenant, columns=tuple(columns))  # fmt: skip
    return _map(ds, options, concurrency, batch_size)


def scan_dataset(
    ds: Any,
    *,
    columns: Sequence[str],
    policy: Policy | None = None,
    language: LanguageOption = "auto",
    concurrency: int | None = None,
    batch_size: int = 256,
) -> Any:
    """The dataset with, for each chosen column, a column `<name>_spans`: a list of
    {start, end, entity, score} (character offsets into that column's text)."""
    options = BatchOptions(action="scan", policy=policy or Policy(), language=language, columns=tuple(columns))
    return _map(ds, options, concurrency, batch_size)
