"""The runner the *_instructions.py benchmarks share: CPU instructions of a Python child process,
counted by callgrind (`valgrind --tool=callgrind`), with hash randomisation off so that two runs of
the same code count the same."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path


def checkout_paths(checkout: str | None) -> list[str]:
    """The source directories of a checkout of this repository (none: the installed packages)."""
    if not checkout:
        return []
    packages = Path(checkout) / "packages"
    return [str(packages / "veil-server" / "src"), str(packages / "veil" / "src")]


def count(
    script: str, arguments: Sequence[str], *, paths: Sequence[str] = (), environment: Mapping[str, str] | None = None
) -> int:
    """Instructions callgrind counts for `python script arguments…` (`Collected :` in its summary);
    `paths` go first on the child's import path, `environment` is added to this one's."""
    child = dict(os.environ, PYTHONHASHSEED="0", **(environment or {}))
    child["PYTHONPATH"] = os.pathsep.join([*paths, child.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with tempfile.TemporaryDirectory() as scratch:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/callgrind.out", sys.executable,
                   script, *arguments]  # fmt: skip
        finished = subprocess.run(command, capture_output=True, text=True, env=child, check=False)
    if finished.returncode != 0:
        raise SystemExit(f"callgrind run failed:\n{finished.stderr[-3000:]}")
    found = re.search(r"Collected\s*:\s*([0-9]+)", finished.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in callgrind's output:\n{finished.stderr[-2000:]}")
    return int(found.group(1))
