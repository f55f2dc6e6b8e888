"""docs/haystack.md: every Python block runs as written, in order, and the YAML it shows is what dumps() writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "haystack.md"


def blocks(language: str) -> list[str]:
    return [part.split("```", 1)[0] for part in DOC.read_text(encoding="utf-8").split(f"```{language}\n")[1:]]


def test_the_python_blocks_of_the_haystack_page_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the config block opens ./.veil
    monkeypatch.setenv("VEIL_VAULT_URL", "redis://127.0.0.1:1/0")  # built lazily: never connected here
    namespace: dict[str, object] = {}
    python = blocks("python")
    assert len(python) == 6
    for block in python:
        exec(compile(block, str(DOC), "exec"), namespace)


def test_the_yaml_shown_is_what_the_pipeline_dumps() -> None:
    from haystack import Pipeline
    from veil_haystack import VeilConfig, VeilTextAnonymizer

    pipeline = Pipeline()
    pipeline.add_component("anonymizer", VeilTextAnonymizer(config=VeilConfig(tenant="acme"), scope="kb"))
    shown = yaml.safe_load(blocks("yaml")[0])
    assert shown["components"] == yaml.safe_load(pipeline.dumps())["components"]
