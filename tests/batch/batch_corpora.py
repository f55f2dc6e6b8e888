"""Corpora for the batch tests: small files made here, with values of a few entity types and
some repeated (so that a value seen by two workers must get one token)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from veil.batch import BatchOptions
from veil.detect.policy import Policy

RULES = Policy(ner="off")
EMAILS = [f"client{i}@exemple.ca" for i in range(40)]


def ticket(rng: random.Random, number: int) -> str:
    return (
        f"Ticket {number}: écrivez à {rng.choice(EMAILS)} ou au 514-555-{rng.randrange(10000):04d}. "
        f"NAS 130 692 544. Merci."
    )


def write_jsonl(path: Path, rows: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    texts = [ticket(rng, i) for i in range(rows)]
    with open(path, "w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            # A language field, honoured row by row (by the CLI's workers and by Ray alike).
            row = {"id": i, "text": text, "language": "fr" if i % 3 else "en"}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return texts


def write_csv(path: Path, rows: int, seed: int = 2) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "body", "note"])
        for i in range(rows):
            # A quoted field with a line end inside: a shard must never cut a record there.
            writer.writerow([i, ticket(rng, i).replace(". ", ".\n", 1), f"note {i}"])


def make_corpus(tmp_path: Path) -> Path:
    """A folder: two JSON Lines files and a text file (in a subfolder)."""
    root = tmp_path / "corpus"
    (root / "more").mkdir(parents=True)
    write_jsonl(root / "a.jsonl", 300, seed=1)
    write_jsonl(root / "b.jsonl", 120, seed=2)
    rng = random.Random(3)
    (root / "more" / "notes.txt").write_text("\n\n".join(ticket(rng, i) for i in range(200)) + "\n", encoding="utf-8")
    return root


def options(**changes: object) -> BatchOptions:
    settings: dict[str, object] = {"policy": RULES, "language": "fr"}
    settings.update(changes)
    return BatchOptions(**settings)  # type: ignore[arg-type]


def read_tree(root: Path) -> dict[str, bytes]:
    """Every output file (the run directory left out), by relative name."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".veil-batch" not in p.relative_to(root).parts
    }
