"""`veil anonymize` and `veil scan` over folders, several files, CSV, Parquet, or with `--jobs`.

    veil anonymize corpus/ -o anonymized/ --jobs 4                 # redaction ([EMAIL]), every file
    veil anonymize tickets.csv -o out/ --columns body,subject --scope tickets   # tokens, in the vault
    veil scan corpus/ -o spans.jsonl                               # one JSON line per document

A run that stops (Ctrl-C, a crash, a malformed row with --on-error stop) is resumed by running
the same command again; --restart starts over.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from veil.errors import ConfigError

BATCH_OPTIONS = ("jobs", "columns", "format", "on_error", "restart", "quiet", "shard_size")


def wants_batch(args: argparse.Namespace) -> bool:
    """Folders, several inputs, Parquet files, or a batch option: a batch run. (A single CSV file
    without batch options is scanned as text, as it always was: give --columns to read it as CSV.)"""
    inputs: list[str] = args.input
    if len(inputs) > 1 or any(getattr(args, name, None) not in (None, False) for name in BATCH_OPTIONS):
        return True
    return any(Path(p).is_dir() or Path(p).suffix.lower() in (".parquet", ".pq") for p in inputs if p != "-")


def size(text: str) -> int:
    """`8M`, `512K`, `1G` or a number of bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    number, unit = (text[:-1], units[text[-1].upper()]) if text and text[-1].upper() in units else (text, 1)
    if not number.isdigit() or int(number) < 1:
        raise argparse.ArgumentTypeError(f"expected a size such as 8M, 512K or 65536, got {text!r}")
    return int(number) * unit


def add_arguments(sub: argparse.ArgumentParser) -> None:
    group = sub.add_argument_group("batch runs (folders, several files, CSV, Parquet)")
    group.add_argument("--jobs", "-j", type=int, help="worker processes (default: one per core)")
    group.add_argument("--format", choices=["jsonl", "csv", "parquet", "text"],
                       help="the inputs' format (default: from each file's extension)")  # fmt: skip
    group.add_argument("--columns", help='comma-separated fields or columns to process (default: "text")')
    group.add_argument("--on-error", choices=["stop", "skip"],
                       help="a malformed row stops the run (default) or is left out, reported and counted")  # fmt: skip
    group.add_argument("--restart", action="store_true", help="discard the checkpoint of an earlier run")
    group.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    group.add_argument("--shard-size", type=size, help="input per shard, the unit of work and resumption (default 1M)")


def run_batch(args: argparse.Namespace, action: str, engine_policy: Any) -> int:
    args.batch_run = True  # for `main`: an interrupted batch keeps its finished shards
    from veil.batch.processor import BatchOptions  # noqa: PLC0415
    from veil.batch.runner import BatchRun  # noqa: PLC0415
    from veil.batch.shards import DEFAULT_SHARD_BYTES  # noqa: PLC0415

    if getattr(args, "jsonl", False):
        raise ConfigError("--jsonl is for one JSON Lines file; for a batch run use --format jsonl")
    if not args.output or args.output == "-":
        target = "a folder" if action == "anonymize" else "a JSON Lines file"
        raise ConfigError(f"a batch run writes its output to {target}: give -o/--output")
    if "-" in args.input:
        raise ConfigError("a batch run reads files and folders, not standard input")
    if getattr(args, "json", False):
        raise ConfigError("--json is for one text; a batch scan writes JSON Lines")
    scope = getattr(args, "scope", None)
    vault = None
    if scope:
        import os  # noqa: PLC0415

        vault = str(Path(args.vault or os.environ.get("VEIL_HOME") or ".veil"))
    columns = tuple(c.strip() for c in args.columns.split(",") if c.strip()) if args.columns else ()
    options = BatchOptions(
        action="anonymize" if action == "anonymize" else "scan",
        policy=engine_policy,
        language=args.language,
        scope=scope or None,
        subject=getattr(args, "subject", None),
        vault=vault,
        tenant=getattr(args, "tenant", "default") or "default",
        columns=columns,
        on_error=args.on_error or "stop",
    )
    shard_bytes = args.shard_size or DEFAULT_SHARD_BYTES
    batch = BatchRun(args.input, args.output, options, jobs=args.jobs, format=args.format, shard_bytes=shard_bytes,
                     restart=args.restart, progress=not args.quiet)  # fmt: skip
    summary = batch.run()
    if not args.quiet:
        for line in summary.lines(action):
            print(line, file=sys.stderr)
    found = summary.spans
    return 3 if getattr(args, "fail_on_pii", False) and found else 0
