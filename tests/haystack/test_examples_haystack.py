"""The Haystack examples run, and show what their docstrings promise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("haystack_*.py"))
VALUES = ("marie.tremblay@exemple.qc.ca", "4111 1111 1111 1111", "+1 514 872 3456")


def run(script: Path) -> list[str]:
    env = {**os.environ, "HAYSTACK_TELEMETRY_ENABLED": "False"}
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=180, check=False, env=env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def line(lines: list[str], prefix: str) -> str:
    return next(text for text in lines if text.startswith(prefix))


def test_the_haystack_examples_are_the_ones_exercised_here() -> None:
    assert {s.name for s in SCRIPTS} == {"haystack_rag.py", "haystack_chat.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_says_how_to_run_it(script: Path) -> None:
    assert f"Run: uv run python examples/{script.name}" in script.read_text(encoding="utf-8")


def test_rag_store_and_model_hold_no_pii_and_the_answer_comes_back_restored() -> None:
    lines = run(EXAMPLES / "haystack_rag.py")
    stored = [text for text in lines if text.startswith("store holds:")]
    assert len(stored) == 3
    for value in VALUES:
        assert all(value not in text for text in stored)
        assert value not in line(lines, "model saw:")
    assert "{{EMAIL_1}}" in line(lines, "model saw:")
    answer = line(lines, "answer:")
    assert "rappeler marie.tremblay@exemple.qc.ca au +1 514 872 3456" in answer
    assert "{{" not in answer
    assert "PII in store or model: False" in lines


def test_chat_agent_tools_get_values_while_the_model_sees_tokens() -> None:
    lines = run(EXAMPLES / "haystack_chat.py")
    seen = line(lines, "model saw:")
    for value in VALUES:
        assert value not in seen
    assert "{{EMAIL_1}}" in seen and "{{CREDIT_CARD_1}}" in seen
    assert line(lines, "tool got:") == (
        "tool got:       marie.tremblay@exemple.qc.ca / Bonjour, votre carte 4111 1111 1111 1111 est bloquée."
    )
    expected = "C'est fait : courriel envoyé à marie.tremblay@exemple.qc.ca"
    assert line(lines, "streamed:").endswith(expected)
    assert line(lines, "final answer:").endswith(expected)
