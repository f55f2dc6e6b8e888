"""Run a batch over files and folders: shards to worker processes, a checkpoint, the outputs.

    summary = run(["corpus/"], "anonymized/", BatchOptions(scope="corpus-2026", vault=".veil"), jobs=4)

The run directory (`anonymized/.veil-batch/`, for a scan `.<output name>.veil-batch/` beside it)
holds the checkpoint: `plan.json` (the inputs' fingerprint and the options), `done.jsonl` (one
line per finished shard, appended once its part file is in place) and `parts/`. A re-run with
the same inputs and options skips the shards listed as done, redoes the others from their
start, and joins the parts into the outputs once all are done: the output of an interrupted and
resumed run is the output of an uninterrupted one. A shard redone after an interruption asks
the vault again for the tokens of its values; the vault returns those it already issued, so a
value never gets a second token.

Workers are processes (`spawn`), each with its own engine loaded once. A worker that dies (a
crash, the OOM killer) breaks the pool: the shards it and the others were running are put back
and the pool is started again, at most `max_crashes` times. Parts are written under a temporary
name and renamed, so a dead worker leaves no half part behind: no row is lost or duplicated.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from veil.batch.formats import PROCESSORS, Context
from veil.batch.processor import BatchOptions, Processor
from veil.batch.report import ProgressBar, Summary
from veil.batch.shards import (
    DEFAULT_SHARD_BYTES,
    Format,
    Shard,
    check_columns,
    find_inputs,
    fingerprint,
    plan,
)
from veil.errors import ConfigError, VeilError

CHECKPOINT_VERSION = 1
MAX_CRASHES = 3


@dataclass(frozen=True, slots=True)
class ShardDone:
    """Told to `on_shard` in the parent process each time a shard is finished and recorded."""

    index: int
    documents: int
    remaining: int


# -- in the worker ------------------------------------------------------------------------------

_processor: Processor | None = None


def _start_worker(options: BatchOptions) -> None:
    """Pool initializer: load the engine (and NER models, vault) once per process."""
    global _processor  # noqa: PLW0603 - one processor per worker process, by design
    _processor = Processor(options)


def _work(shard: Shard, parts: str) -> dict[str, Any]:
    if _processor is None:  # pragma: no cover - the initializer always runs first
        raise RuntimeError("batch worker used before its initializer ran")
    return process_shard(_processor, shard, Path(parts))


def part_path(parts: Path, shard: Shard) -> Path:
    return parts / f"{shard.index:06d}.part"


def process_shard(processor: Processor, shard: Shard, parts: Path) -> dict[str, Any]:
    """Process one shard into its part file (written aside, then renamed); its statistics."""
    target = part_path(parts, shard)
    temporary = parts / f".{shard.index:06d}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    binary = shard.file.format == "parquet" and processor.options.action == "anonymize"
    try:
        if binary:
            from veil.batch.parquet import process_parquet  # noqa: PLC0415

            with open(os.devnull, "w", encoding="utf-8") as nowhere:
                context = Context(shard, processor, nowhere)
                process_parquet(context, temporary)
        else:
            with open(temporary, "w", encoding="utf-8", newline="") as out:
                context = Context(shard, processor, out)
                if shard.file.format == "parquet":
                    from veil.batch.parquet import process_parquet  # noqa: PLC0415

                    process_parquet(context, None)
                else:
                    PROCESSORS[shard.file.format](context)
        processor.audit(context.session, context.stats.entities, context.stats.documents)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return context.stats.to_dict()


# -- the checkpoint -----------------------------------------------------------------------------


class Checkpoint:
    """plan.json + done.jsonl + parts/ in the run directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.parts = root / "parts"
        self.plan_file = root / "plan.json"
        self.done_file = root / "done.jsonl"
        self.summary_file = root / "summary.json"

    def open(self, identity: dict[str, Any], *, restart: bool) -> dict[int, dict[str, Any]]:
        """The shards done by earlier runs (index → statistics); a fresh checkpoint if none."""
        if restart and self.root.exists():
            shutil.rmtree(self.root)
        if self.plan_file.exists():
            recorded = json.loads(self.plan_file.read_text(encoding="utf-8"))
            if recorded != identity:
                raise ConfigError(
                    f"{self.root} holds the checkpoint of a run with other inputs or options; "
                    "rerun with the same ones to resume, or add --restart to start over"
                )
            return self._done()
        self.parts.mkdir(parents=True, exist_ok=True)
        temporary = self.plan_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(identity, indent=1), encoding="utf-8")
        os.replace(temporary, self.plan_file)
        return {}

    def _done(self) -> dict[int, dict[str, Any]]:
        done: dict[int, dict[str, Any]] = {}
        if not self.done_file.exists():
            return done
        with open(self.done_file, encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by a crash while it was written: that shard is redone
                if isinstance(entry, dict) and "shard" in entry:
                    done[int(entry["shard"])] = entry["stats"]
        return done

    def complete(self) -> bool:
        return self.summary_file.exists()

    def finish(self, summary: Summary) -> None:
        """The outputs are in place: the parts can go; the plan, the log and the summary stay, so
        that running the same command again does nothing."""
        temporary = self.summary_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(summary.to_dict(), indent=1), encoding="utf-8")
        os.replace(temporary, self.summary_file)
        shutil.rmtree(self.parts, ignore_errors=True)

    def record(self, shard: Shard, stats: dict[str, Any]) -> None:
        with open(self.done_file, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"shard": shard.index, "stats": stats}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


# -- the run ------------------------------------------------------------------------------------


def _replace(target: Path, write: Callable[[Path], None]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.veil-tmp")
    try:
        write(temporary)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _concatenate(parts: Sequence[Path]) -> Callable[[Path], None]:
    def write(target: Path) -> None:
        with open(target, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 20)

    return write


class BatchRun:
    """One run: plan, checkpoint, workers, outputs. See the module docstring."""

    def __init__(
        self,
        inputs: Sequence[str | Path],
        output: str | Path,
        options: BatchOptions,
        *,
        jobs: int | None = None,
        format: Format | None = None,
        shard_bytes: int = DEFAULT_SHARD_BYTES,
        restart: bool = False,
        progress: bool = True,
        on_shard: Callable[[ShardDone], None] | None = None,
        max_crashes: int = MAX_CRASHES,
    ) -> None:
        self.options = options
        self.jobs = jobs if jobs is not None else (os.cpu_count() or 1)
        if self.jobs < 1:
            raise ConfigError("--jobs must be at least 1")
        self.output = Path(output)
        self.files = find_inputs(inputs, format)
        self._refuse_output_among_inputs(inputs)
        self.shards = plan(self.files, shard_bytes)
        check_columns(self.files, self.shards, options.columns)
        if options.action == "anonymize":
            self.run_dir = self.output / ".veil-batch"
        else:
            self.run_dir = self.output.parent / f".{self.output.name}.veil-batch"
        self.checkpoint = Checkpoint(self.run_dir)
        self.restart = restart
        self.progress = progress
        self.on_shard = on_shard
        self.max_crashes = max_crashes
        self.summary = Summary(files=len(self.files), input_bytes=sum(f.size for f in self.files))

    def _refuse_output_among_inputs(self, inputs: Sequence[str | Path]) -> None:
        out = self.output.resolve()
        for given in inputs:
            root = Path(given).resolve()
            if out == root or (root.is_dir() and root in out.parents):
                raise ConfigError(f"the output {self.output} is inside the input {given}: choose another place")

    def identity(self) -> dict[str, Any]:
        """What must not change between a run and its resumption."""
        options = asdict(self.options) | {"policy": repr(self.options.policy), "vault": str(self.options.vault)}
        # How errors are handled and batch sizes change no output row: a run stopped by a
        # malformed row may be resumed with --on-error skip.
        for free in ("on_error", "batch_rows"):
            options.pop(free)
        return {
            "version": CHECKPOINT_VERSION,
            "inputs": fingerprint(self.files),
            "shards": [[s.file.name, s.start, s.end] for s in self.shards],
            "options": json.loads(json.dumps(options, default=str)),
        }

    def run(self) -> Summary:
        started = time.perf_counter()
        if self.options.scope is not None:
            self._prepare_vault()
        done = self.checkpoint.open(self.identity(), restart=self.restart)
        if self.checkpoint.complete() and self._outputs_exist():
            return self._already_complete(done, started)
        todo = [shard for shard in self.shards if shard.index not in done or not self._part_exists(shard)]
        waiting = {shard.index for shard in todo}
        for shard in self.shards:
            if shard.index not in waiting:
                self.summary.add(done[shard.index], resumed=True)
        bar = ProgressBar(
            "anonymizing" if self.options.action == "anonymize" else "scanning",
            sum(shard.size for shard in self.shards),
            enabled=self.progress,
        )
        bar.resume(sum(shard.size for shard in self.shards if shard.index not in waiting))
        self._remaining = len(todo)
        try:
            if todo and self.jobs == 1:
                self._run_here(todo, bar)
            elif todo:
                self._run_pool(todo, bar)
        finally:
            bar.close()
        self._assemble()
        self.summary.seconds = time.perf_counter() - started
        self.checkpoint.finish(self.summary)
        return self.summary

    def _outputs_exist(self) -> bool:
        if self.options.action == "scan":
            return self.output.exists()
        return all((self.output / file.name).exists() for file in self.files)

    def _already_complete(self, done: dict[int, dict[str, Any]], started: float) -> Summary:
        """Every shard was done and joined by an earlier run: nothing to do, nothing rewritten."""
        for shard in self.shards:
            self.summary.add(done[shard.index], resumed=True)
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    def _part_exists(self, shard: Shard) -> bool:
        return part_path(self.checkpoint.parts, shard).exists()

    def _prepare_vault(self) -> None:
        """Open the vault once here: a missing vault fails before any worker starts, and the
        tenant's data keys exist before workers race to create them."""
        processor = Processor(self.options)
        try:
            if processor.veil is not None:
                processor.veil.keyring.prepare(processor.veil.tenant)
        finally:
            processor.close()

    def _finished(self, shard: Shard, stats: dict[str, Any], bar: ProgressBar) -> None:
        self.checkpoint.record(shard, stats)
        self.summary.add(stats)
        self._remaining -= 1
        bar.advance(shard.size, int(stats["documents"]))
        if self.on_shard is not None:
            self.on_shard(ShardDone(shard.index, int(stats["documents"]), self._remaining))

    def _run_here(self, todo: list[Shard], bar: ProgressBar) -> None:
        processor = Processor(self.options)
        try:
            for shard in todo:
                self._finished(shard, process_shard(processor, shard, self.checkpoint.parts), bar)
        finally:
            processor.close()

    def _run_pool(self, todo: list[Shard], bar: ProgressBar) -> None:
        context = multiprocessing.get_context("spawn")
        pending = deque(todo)
        while pending:
            running: dict[Future[dict[str, Any]], Shard] = {}
            pool = ProcessPoolExecutor(self.jobs, mp_context=context, initializer=_start_worker,
                                       initargs=(self.options,))  # fmt: skip
            broken = False
            try:
                while (pending or running) and not broken:
                    while pending and len(running) < 2 * self.jobs and not broken:
                        shard = pending[0]
                        try:
                            running[pool.submit(_work, shard, str(self.checkpoint.parts))] = shard
                        except BrokenProcessPool:
                            broken = True
                        else:
                            pending.popleft()
                    finished, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                    bar.draw()
                    for future in sorted(finished, key=lambda f: running[f].index):
                        shard = running.pop(future)
                        try:
                            stats = future.result()
                        except BrokenProcessPool:
                            pending.append(shard)
                            broken = True
                        else:
                            self._finished(shard, stats, bar)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            if broken:
                pending.extend(running.values())
                pending = deque(sorted(pending, key=lambda s: s.index))
                self.summary.crashes += 1
                if self.summary.crashes > self.max_crashes:
                    raise VeilError(
                        f"a worker process died {self.summary.crashes} times (killed, out of memory?); "
                        f"{len(pending)} shard(s) not done. Finished shards are kept: run the same "
                        "command again to resume"
                    )

    def _assemble(self) -> None:
        """Join the parts into the outputs, in shard order."""
        parts = self.checkpoint.parts
        if self.options.action == "scan":
            _replace(self.output, _concatenate([part_path(parts, s) for s in self.shards]))
            return
        for file in self.files:
            mine = [part_path(parts, s) for s in self.shards if s.file.name == file.name]
            target = self.output / file.name
            if file.format == "parquet":
                from veil.batch.parquet import join_parts  # noqa: PLC0415

                _replace(target, lambda path, mine=mine: join_parts(mine, path))  # type: ignore[misc]
            else:
                _replace(target, _concatenate(mine))


def run(inputs: Sequence[str | Path], output: str | Path, options: BatchOptions, **settings: Any) -> Summary:
    """Run a batch (see `BatchRun` for the settings) and return its summary."""
    return BatchRun(inputs, output, options, **settings).run()
