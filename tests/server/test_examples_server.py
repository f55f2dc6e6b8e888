"""examples/server_roundtrip.py runs, and shows what its docstring promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "server_roundtrip.py"
MESSAGE = "Bonjour, écrivez à marie.tremblay@exemple.qc.ca ou appelez le +1 514 872 3456. NAS 130 692 544."


def test_server_roundtrip_example_anonymizes_upstream_and_restores_every_answer() -> None:
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
    seen = lines["the model sees"].strip()
    assert "{{EMAIL_1}}" in seen and "{{PHONE_1}}" in seen and "{{CA_SIN_1}}" in seen
    assert "marie.tremblay" not in seen and "130 692 544" not in seen
    assert lines["unary answer"].strip() == MESSAGE
    assert lines["streamed answer"].strip() == MESSAGE
    assert MESSAGE in lines["tool call"]
    assert '"pii_count": 3' in lines["veil block"]


def test_server_limits_example_shows_a_429_after_the_limit_and_the_usage_counted() -> None:
    example = EXAMPLE.parent / "server_limits.py"
    result = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == [f"request {n}: 200, {3 - n} left this minute" for n in (1, 2, 3)]
    assert lines[3].startswith("request 4: 429 rate_limit_exceeded, retry after ")
    assert '"requests": 3' in lines[4] and '"cost_usd": 0.0' in lines[4]  # the echo model is free
