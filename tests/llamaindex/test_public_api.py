"""The public API of veil_llamaindex, and the direction of dependencies."""

from __future__ import annotations

import subprocess
import sys

import veil_llamaindex


def test_exported_members() -> None:
    assert sorted(veil_llamaindex.__all__) == [
        "VeilEmbedding", "VeilLLM", "VeilPIIPostprocessor", "VeilTransform", "__version__",
    ]  # fmt: skip
    for name in veil_llamaindex.__all__:
        assert hasattr(veil_llamaindex, name)


def test_llamaindex_class_names_are_stable() -> None:
    classes = (veil_llamaindex.VeilEmbedding, veil_llamaindex.VeilLLM, veil_llamaindex.VeilPIIPostprocessor,
               veil_llamaindex.VeilTransform)  # fmt: skip
    names = {cls.class_name() for cls in classes}
    assert names == {"VeilEmbedding", "VeilLLM", "VeilPIIPostprocessor", "VeilTransform"}


def imported_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return {name.split(".")[0] for name in result.stdout.split()}


def test_importing_the_adapter_loads_no_other_framework() -> None:
    loaded = imported_by("import veil_llamaindex")
    assert "llama_index" in loaded
    assert not loaded & {"langchain_core", "haystack", "veil_langchain", "veil_haystack", "torch"}


def test_the_core_never_imports_llamaindex() -> None:
    assert "llama_index" not in imported_by("import veil; from veil.session import Veil; Veil().session('s')")
