"""The documentation says what the code does."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import veil

ROOT = Path(__file__).resolve().parents[2]


def test_entities_page_is_generated_from_the_current_rules() -> None:
    spec = importlib.util.spec_from_file_location("entities_doc", ROOT / "scripts" / "entities_doc.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (ROOT / "docs" / "entities.md").read_text(encoding="utf-8")
    assert current == module.render(), "run: uv run python scripts/entities_doc.py > docs/entities.md"


def test_every_page_in_the_mkdocs_nav_exists() -> None:
    nav = re.findall(r":\s*([\w/.-]+\.md)", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert nav
    for page in nav:
        assert (ROOT / "docs" / page).is_file(), page


def test_readme_gives_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install uv && uv run veil anonymize examples/data/ticket_fr.txt" in readme
    assert "pip install uv && uv run pytest" in readme


def test_readme_tour_runs_as_written(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # the reversible example opens ./.veil
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [part.split("```", 1)[0] for part in readme.split("```python")[1:]]
    assert len(blocks) == 2
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert isinstance(namespace["engine"], veil.Engine)
    spans = namespace["spans"]
    assert [s.entity for s in spans] == ["CA_SIN", "EMAIL", "CREDIT_CARD"]  # type: ignore[attr-defined]
    assert namespace["prompt"] == "Écrivez à {{EMAIL_1}}"
