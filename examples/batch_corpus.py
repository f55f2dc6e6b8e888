"""Anonymize a small corpus on two worker processes, reversibly, and resume a finished run.

Run: uv run python examples/batch_corpus.py

The same as `veil anonymize corpus/ -o anonymized/ --columns text --scope corpus --jobs 2`:
a folder of JSON Lines and CSV files, each written again with its text replaced by tokens kept
in a vault, one token per value whichever worker saw it first.
"""

import csv
import json
import shutil
import tempfile
from pathlib import Path

from veil import Policy
from veil.batch import BatchOptions, run
from veil.session import Veil

HERE = Path(__file__).parent


def make_corpus(root: Path) -> None:
    (root / "tickets").mkdir(parents=True)
    shutil.copy(HERE / "data" / "batch.jsonl", root / "tickets" / "batch.jsonl")
    with open(root / "tickets" / "crm.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "stage"])
        writer.writerow([1, "Rappeler jean.roy@example.ca au (514) 555-0199", "lead"])
        writer.writerow([2, "Contrat signé par jean.roy@example.ca", "won"])


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        make_corpus(root)
        Veil.open(root / ".veil").close()  # `veil keys init --vault .veil`
        options = BatchOptions(policy=Policy(ner="off"), scope="corpus", vault=str(root / ".veil"))
        summary = run([root / "tickets"], root / "anonymized", options, jobs=2, progress=False)
        print("\n".join(summary.lines("anonymize")))

        first = json.loads((root / "anonymized" / "batch.jsonl").read_text(encoding="utf-8").splitlines()[0])
        print("jsonl:", first["text"])
        with open(root / "anonymized" / "crm.csv", encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        print("csv:  ", rows[1][1], "|", rows[2][1])

        veil = Veil.open(root / ".veil")
        print("restored:", veil.session("corpus").restore(rows[2][1]))
        veil.close()

        again = run([root / "tickets"], root / "anonymized", options, jobs=2, progress=False)
        print(f"second run: {again.shards_resumed} of {again.shards} shard(s) already done")


if __name__ == "__main__":
    main()
