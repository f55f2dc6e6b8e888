"""The LlamaIndex examples run, and show what their docstrings promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SECRETS = ("marie.tremblay@exemple.qc.ca", "+1 514 872 3456", "130 692 544", "4111 1111 1111 1111")


def run(name: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def lines(out: list[str], prefix: str) -> list[str]:
    found = [line for line in out if line.startswith(prefix)]
    assert found, f"no line starts with {prefix!r}"
    return found


@pytest.mark.parametrize("name", ["llamaindex_query_engine.py", "llamaindex_agent.py"])
def test_example_says_how_to_run_it(name: str) -> None:
    assert f"Run: uv run python examples/{name}" in (EXAMPLES / name).read_text(encoding="utf-8")


def test_query_engine_stores_no_personal_value_and_restores_the_answer() -> None:
    out = run("llamaindex_query_engine.py")
    stored, to_model, to_user = lines(out, "stored:"), lines(out, "to the model:"), lines(out, "to the user:")
    for secret in SECRETS:
        assert not any(secret in line for line in stored + to_model)
    assert any("{{CA_SIN_1}}" in line for line in stored)
    assert any("Query: What is the SIN of {{EMAIL_1}}?" in line for line in to_model)
    assert "130 692 544" in to_user[0] and "marie.tremblay@exemple.qc.ca" in to_user[0]
    assert "{{" not in to_user[0]


def test_agent_runs_its_tool_with_the_real_value_and_the_model_sees_tokens() -> None:
    out = run("llamaindex_agent.py")
    assert lines(out, "tool ran with:") == ["tool ran with:  marie.tremblay@exemple.qc.ca"]
    to_model = lines(out, "to the model:")
    for secret in SECRETS:
        assert not any(secret in line for line in to_model)
    assert any("{{CREDIT_CARD_1}}" in line for line in to_model)  # the tool's output, anonymized
    (answer,) = lines(out, "to the user:")
    assert "marie.tremblay@exemple.qc.ca" in answer and "4111 1111 1111 1111" in answer and "{{" not in answer
