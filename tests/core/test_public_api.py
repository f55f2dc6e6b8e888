"""The public API is small, frozen, and cheap to import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import veil

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("spacy", "torch", "gliner", "transformers", "langchain_core", "llama_index", "haystack", "numpy")


PUBLIC = """Anonymized ApprovalError ConfigError DetectionError Engine Entity InputError IntegrityError
KeyUnavailable Policy Session Span TokenNotFound UserPattern VaultError VaultUnavailable Veil VeilError
WebhookSignatureError __version__ redact""".split()


def test_exported_names_are_exactly_the_documented_ones() -> None:
    assert sorted(veil.__all__) == sorted(PUBLIC)
    for name in veil.__all__:
        assert hasattr(veil, name)


def test_error_hierarchy() -> None:
    for error in (
        veil.ConfigError,
        veil.DetectionError,
        veil.InputError,
        veil.VaultError,
        veil.ApprovalError,
        veil.WebhookSignatureError,
    ):
        assert issubclass(error, veil.VeilError)
    for error in (veil.TokenNotFound, veil.IntegrityError, veil.KeyUnavailable, veil.VaultUnavailable):
        assert issubclass(error, veil.VaultError)


def test_detection_alone_does_not_load_the_crypto_and_vault_modules() -> None:
    loaded = _modules_after("import veil\nveil.Engine(veil.Policy(ner='off')).detect('a@b.ca')")
    assert not {"cryptography", "veil.session", "veil.vault", "sqlite3"} & loaded
    assert "veil.session" in _modules_after("import veil\nveil.Veil")


def _modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_import_veil_and_building_an_engine_load_no_heavy_module() -> None:
    # An Engine with NER (the default when veil[ner] is installed) loads spaCy on its first text only.
    loaded = _modules_after("import veil\nveil.Engine()")
    assert not {m.split(".")[0] for m in loaded} & set(HEAVY)


def test_a_rules_only_scan_loads_no_heavy_module() -> None:
    code = "import veil\nveil.Engine(veil.Policy(ner='off')).detect('a@b.ca 514-555-0199 FR7630006000011234567890189')"
    assert not {m.split(".")[0] for m in _modules_after(code)} & set(HEAVY)


def test_the_heavy_module_check_does_see_imported_modules() -> None:
    # Guard against a check that can never fail: the same probe does report a module we import.
    assert "json" in _modules_after("import json")


def test_ruff_refuses_a_framework_import_in_the_core(tmp_path: Path) -> None:
    bad = ROOT / "packages" / "veil" / "src" / "veil" / "_probe_banned_import.py"
    bad.write_text("import spacy\n", encoding="utf-8")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "TID251", str(bad)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
    finally:
        bad.unlink()
    assert result.returncode == 1
    assert "TID251" in result.stdout and "spacy" in result.stdout
