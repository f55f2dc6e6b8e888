"""The LangChain examples run, and show what their docstrings promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EMAIL = "marie.tremblay@exemple.qc.ca"
VALUES = (EMAIL, "+1 514 872 3456", "130 692 544", "4111 1111 1111 1111")


def run(name: str) -> list[str]:
    result = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=300,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"Run: uv run python examples/{name}" in (EXAMPLES / name).read_text(encoding="utf-8")
    return result.stdout.splitlines()


def lines(output: list[str], prefix: str) -> list[str]:
    found = [line for line in output if line.startswith(prefix)]
    assert found, prefix
    return found


def test_rag_example_stores_and_sends_tokens_and_answers_with_values() -> None:
    output = run("langchain_rag.py")
    for line in lines(output, "stored:") + lines(output, "to the model:"):
        assert not any(value in line for value in VALUES), line
    assert "{{EMAIL_1}}" in lines(output, "to the model:")[0]
    assert not any(line.startswith("stored:         103") for line in output)  # above the PII threshold
    answer = lines(output, "to the user:")[0]
    assert EMAIL in answer and "+1 514 872 3456" in answer and "{{" not in answer
    assert EMAIL in lines(output, "for an admin:")[0]


def test_agent_example_gives_the_tool_values_and_the_model_tokens() -> None:
    output = run("langchain_agent.py")
    assert lines(output, "tool called with:") == [f"tool called with: {EMAIL}"]
    model_lines = lines(output, "to the model:")
    assert len(model_lines) == 3
    for line in model_lines:
        assert not any(value in line for value in VALUES), line
    assert "{{PHONE_1}}" in model_lines[2] and "{{CA_SIN_1}}" in model_lines[2]
    assert lines(output, "to the user:") == [
        "to the user:    Their file says: phone +1 514 872 3456, SIN 130 692 544, plan Gold."
    ]


def test_create_agent_example_gives_tools_values_the_model_tokens_and_the_user_values() -> None:
    output = run("langchain_create_agent.py")
    assert lines(output, "tool lookup_customer got:") == [f"tool lookup_customer got: {EMAIL}"]
    assert lines(output, "tool send_message got:") == ["tool send_message got:    +1 514 872 3456"]
    model_lines = lines(output, "to the model:")
    assert len(model_lines) == 3
    for line in model_lines:
        assert not any(value in line for value in VALUES), line
    assert "{{EMAIL_1}}" in model_lines[0] and "{{PHONE_1}}" in model_lines[1]
    answer = f"Done: I texted +1 514 872 3456 for {EMAIL}."
    assert lines(output, "streamed to the user:") == [f"streamed to the user:     {answer}"]
    assert lines(output, "in the thread's state:") == [f"in the thread's state:    {answer}"]
