"""Fuzzing, as part of the test suite: every saved input replays through its target (each
failure the fuzzer ever found stays fixed), and a short atheris run of every target checks that
the harnesses work and nothing obvious fails. Long runs: tests/reliability/fuzz.py (see
docs/reliability.md), or `pytest --runslow` for five minutes per target.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import fuzz_targets
import pytest
from fuzz import REGRESSIONS, TARGET_NAMES, command

SAVED = sorted(REGRESSIONS.iterdir())


def test_every_target_has_a_saved_input_and_every_saved_input_names_a_target() -> None:
    assert set(fuzz_targets.TARGETS) == set(TARGET_NAMES)
    prefixes = {path.name.split("-", 1)[0] for path in SAVED}
    assert prefixes == set(TARGET_NAMES)


@pytest.mark.parametrize("saved", SAVED, ids=lambda path: path.name)
def test_a_saved_fuzz_input_passes_its_target(saved: Path) -> None:
    fuzz_targets.TARGETS[saved.name.split("-", 1)[0]](saved.read_bytes())


def test_a_backslash_before_a_token_shaped_literal_survives_the_round_trip() -> None:
    """Found by the `anonymize` target: restore took the text's backslash for a Markdown escape of
    the token placed after it, and dropped it."""
    fuzz_targets.anonymize(b"\x01" + rb"C:\\{\{PHONE_2\}\} and \{{EMAIL_1}}")


def _atheris_or_skip() -> None:
    if importlib.util.find_spec("atheris") is None:
        if os.environ.get("CI"):
            pytest.fail("atheris is required under CI (the dev group installs it on Linux x86-64)")
        pytest.skip("atheris has wheels for Linux x86-64 only")


def _fuzz_all(tmp_path: Path, *, seconds: int, runs: int | None) -> None:
    """Every target in its own process, two at a time."""
    failures = []
    pending = list(TARGET_NAMES)
    while pending:
        batch, pending = pending[:2], pending[2:]
        children = {
            target: subprocess.Popen(
                command(target, seconds, runs, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            for target in batch
        }
        for target, child in children.items():
            output, _ = child.communicate(timeout=seconds + 120)
            if child.returncode != 0:
                failures.append(f"{target}:\n{output[-3000:]}")
    assert not failures, "\n\n".join(failures) + f"\nfailing inputs in {tmp_path}"


def test_a_short_atheris_run_of_every_target_finds_nothing(tmp_path: Path) -> None:
    _atheris_or_skip()
    _fuzz_all(tmp_path, seconds=1, runs=2000)


@pytest.mark.slow
def test_five_minutes_of_fuzzing_per_target_find_nothing(tmp_path: Path) -> None:
    _atheris_or_skip()
    _fuzz_all(tmp_path, seconds=int(os.environ.get("VEIL_FUZZ_SECONDS", "300")), runs=None)


def test_the_fuzz_command_documents_itself() -> None:
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("fuzz.py")), "--help"], capture_output=True, text=True, check=True
    )
    assert "--seconds" in result.stdout
