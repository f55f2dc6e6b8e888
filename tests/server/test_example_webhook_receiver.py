"""examples/webhook_receiver.py runs, and shows what its docstring promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "webhook_receiver.py"


def test_webhook_receiver_example_verifies_deliveries_and_refuses_tampered_and_replayed_ones() -> None:
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    parts = (line.partition(":") for line in result.stdout.splitlines())
    lines = {key.strip(): value.strip() for key, _, value in parts}
    assert lines["verified event"] == 'anonymize.flagged {"CA_SIN": 1, "EMAIL": 1, "PHONE": 1}'
    assert lines["values in event"] == "False"
    assert lines["tampered body"] == "400 mismatch"
    assert lines["replayed (old)"] == "400 expired"
    assert "anonymize.flagged" in lines["delivery log"]
