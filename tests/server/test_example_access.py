"""examples/server_access.py runs, and shows what its docstring promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "server_access.py"


def test_server_access_example_creates_narrows_uses_and_revokes_a_key() -> None:
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
    assert "tenant acme" in lines["created key"] and "sk-veil-" not in lines["created key"]
    assert lines["listed as"].strip().startswith("sk-veil-") and "…" in lines["listed as"]
    assert "bearer" in lines["token"] and "300 s" in lines["token"] and "['chat']" in lines["token"]
    assert lines["answer"].strip() == "Écrivez à marie@exemple.qc.ca"
    assert "insufficient_scope" in lines["narrowed"]
    assert "invalid_api_key" in lines["after revoke"] and "revoked" in lines["after revoke"]
