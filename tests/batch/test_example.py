"""examples/batch_corpus.py runs and shows what its docstring promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "batch_corpus.py"


def test_batch_corpus_example_tokenizes_both_formats_consistently_and_resumes() -> None:
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "5 document(s) in 2 file(s)" in out
    assert "jsonl: Please call me at {{PHONE_1}} or write to {{EMAIL_1}}." in out
    # The CSV's e-mail is the JSON Lines file's: one value, one token, across files and workers.
    assert "csv:   Rappeler {{EMAIL_1}} au {{PHONE_1}} | Contrat signé par {{EMAIL_1}}" in out
    assert "restored: Contrat signé par jean.roy@example.ca" in out
    assert "second run: 2 of 2 shard(s) already done" in out
    assert "jean.roy@example.ca" not in out.replace("restored: Contrat signé par jean.roy@example.ca", "")
