"""Every example under examples/ runs, and shows what its docstring promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))


def run(script: Path) -> str:
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


TESTS = Path(__file__).resolve().parents[1]


def unexercised(scripts: list[Path], tests: Path) -> list[str]:
    """Examples that no test file names (the core's are run here, each adapter's by its own tests)."""
    sources = "\n".join(p.read_text(encoding="utf-8") for p in tests.rglob("test_*.py"))
    return [s.name for s in scripts if s.name not in sources and s.stem not in sources]


def test_every_example_is_run_by_a_test() -> None:
    assert unexercised(SCRIPTS, TESTS) == []


def test_an_example_that_no_test_names_is_reported(tmp_path: Path) -> None:
    (tmp_path / "test_something.py").write_text("run('examples/known.py')\n", encoding="utf-8")
    assert unexercised([tmp_path / "known.py", tmp_path / "forgotten.py"], tmp_path) == ["forgotten.py"]


def test_detect_and_redact_hides_every_identifier_of_the_tickets() -> None:
    out = run(EXAMPLES / "detect_and_redact.py")
    for secret in (
        "130 692 544",
        "marie-eve.tremblay@exemple.qc.ca",
        "4111 1111 1111 1111",
        "H3G 1P7",
        "FR76 3000",
        "203.0.113.42",
        "john.smith@example.com",
        "5500 0000 0000 0004",
        "2001:db8",
    ):
        assert secret not in out
    assert "[CA_HEALTH_CARD]" in out
    assert "[ADDRESS]" in out
    assert "Order 48213 is still pending" in out  # an order number is not PII


def test_policy_from_config_applies_allow_deny_and_user_patterns() -> None:
    out = run(EXAMPLES / "policy_from_config.py")
    assert "[POLICY_NUMBER]" in out
    assert "[PROJECT]" in out
    assert "soutien@assurances-exemple.ca" in out  # allow-listed
    assert "jean.roy@exemple.ca" not in out
    assert "rendez-vous le 3 mars 2025" in out  # DATE excluded; the date of birth is not


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_has_a_docstring_saying_how_to_run_it(script: Path) -> None:
    assert "Run: uv run python examples/" in script.read_text(encoding="utf-8")


def test_reversible_chat_never_shows_the_model_a_value_and_restores_the_stream() -> None:
    out = run(EXAMPLES / "reversible_chat.py")
    to_model = next(line for line in out.splitlines() if line.startswith("to the model:"))
    to_user = next(line for line in out.splitlines() if line.startswith("to the user:"))
    for value in ("(514) 555-0199", "marie@exemple.qc.ca", "130 692 544"):
        assert value not in to_model
        assert value in to_user
    assert "{{" not in to_user
    assert "erased:         3 mapping(s)" in out
    assert "audit log ok:   True" in out


def test_ner_names_finds_names_places_and_whole_addresses_and_never_a_verb() -> None:
    out = run(EXAMPLES / "ner_names.py")
    for line in (
        "PERSON         0.95 spacy   Stéphane Thibault",
        "PERSON         0.85 titles  Dr Sébastien Poirier",
        "ADDRESS        0.80 rules   42 Maple Ave, Apt 5, Springfield, Illinois 62704",
        "-> Bonjour, je voudrais parler à [PERSON] au sujet du dossier. Please also copy [PERSON].",
        "permissive: [(<Entity.PERSON: 'PERSON'>, 'Gagnon')]",
    ):
        assert line in out
    assert "Pouvez-vous écrire à [EMAIL]" in out
