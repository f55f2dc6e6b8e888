"""What a batch run tells its user: a progress bar while it runs, a summary when it ends.

Both go to stderr and carry counts only (documents, spans per entity, errors by line number),
never a value found. The bar draws only on a terminal, so logs and CI output stay clean.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any


@dataclass
class Summary:
    """Totals of a run, resumed shards included."""

    files: int = 0
    shards: int = 0
    shards_resumed: int = 0
    documents: int = 0
    malformed: int = 0
    entities: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    input_bytes: int = 0
    seconds: float = 0.0
    crashes: int = 0

    def add(self, stats: dict[str, Any], *, resumed: bool = False, keep_errors: int = 1000) -> None:
        self.shards += 1
        self.shards_resumed += int(resumed)
        self.documents += int(stats["documents"])
        self.malformed += int(stats["malformed"])
        for entity, count in stats["entities"].items():
            self.entities[entity] = self.entities.get(entity, 0) + int(count)
        room = keep_errors - len(self.errors)
        if room > 0:
            self.errors.extend(stats["errors"][:room])

    @property
    def spans(self) -> int:
        return sum(self.entities.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files, "shards": self.shards, "shards_resumed": self.shards_resumed,
            "documents": self.documents, "malformed": self.malformed, "spans": self.spans,
            "entities": dict(sorted(self.entities.items())), "errors": self.errors,
            "input_bytes": self.input_bytes, "seconds": round(self.seconds, 3), "worker_crashes": self.crashes,
        }  # fmt: skip

    def lines(self, action: str) -> list[str]:
        rate = self.documents / self.seconds if self.seconds > 0 else 0.0
        resumed = f" ({self.shards_resumed} done by an earlier run)" if self.shards_resumed else ""
        lines = [
            f"veil {action}: {self.documents} document(s) in {self.files} file(s), {self.shards} shard(s){resumed}, "
            f"{self.seconds:.1f} s ({rate:.0f} documents/s)",
            f"  spans: {self.spans}"
            + (f" ({', '.join(f'{e} {n}' for e, n in sorted(self.entities.items()))})" if self.entities else ""),
        ]
        if self.crashes:
            lines.append(f"  worker crashes: {self.crashes} (their shards were run again)")
        if self.malformed:
            lines.append(f"  malformed rows left out: {self.malformed}")
            lines.extend(f"    {error}" for error in self.errors[:20])
            if self.malformed > 20:
                lines.append(f"    … and {self.malformed - 20} more (all listed in the run's summary.json)")
        return lines


class ProgressBar:
    """`label [#####.....] 42.0%  1,234 docs  567 docs/s  3.1 MB/s  ETA 0:01:05` on one line."""

    def __init__(self, label: str, total_bytes: int, *, stream: IO[str] | None = None, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self.total = max(total_bytes, 1)
        self.enabled = enabled and self.stream.isatty()
        self.started = time.perf_counter()
        self.done_bytes = 0
        self.baseline = 0  # bytes done by an earlier run: not part of this run's rate
        self.documents = 0

    def resume(self, done_bytes: int) -> None:
        self.done_bytes = self.baseline = done_bytes

    def advance(self, done_bytes: int, documents: int) -> None:
        self.done_bytes += done_bytes
        self.documents += documents
        self.draw()

    def draw(self) -> None:
        if not self.enabled:
            return
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        speed = (self.done_bytes - self.baseline) / elapsed
        left = (self.total - self.done_bytes) / speed if speed > 0 else None
        fraction = min(self.done_bytes / self.total, 1.0)
        filled = int(30 * fraction)
        eta = "--:--:--" if left is None else time.strftime("%H:%M:%S", time.gmtime(left))
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {100 * fraction:5.1f}%  "
            f"{self.documents:,} docs  {self.documents / elapsed:,.0f} docs/s  {speed / 1e6:.1f} MB/s  ETA {eta} "
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
