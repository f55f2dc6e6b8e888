"""The public API of veil_langchain is what __all__ says, and importing it pulls no other adapter."""

from __future__ import annotations

import subprocess
import sys

import veil_langchain


def test_exported_members_are_frozen() -> None:
    assert set(veil_langchain.__all__) == {
        "SCOPE_KEY", "BinaryContentRefused", "RunnableVeil", "VeilAnonymizer", "VeilChatModel",
        "VeilDocumentTransformer", "VeilEmbeddings", "VeilRestorer", "VeilRetriever", "__version__",
    }  # fmt: skip
    for name in veil_langchain.__all__:
        assert getattr(veil_langchain, name) is not None


def test_importing_the_adapter_loads_no_other_framework_or_adapter() -> None:
    code = (
        "import sys, veil_langchain; "
        "bad = {'llama_index', 'haystack', 'veil_llamaindex', 'veil_haystack', 'veil_server', 'spacy', 'torch'}; "
        "print(sorted(bad & {m.split('.')[0] for m in sys.modules}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_importing_the_adapter_does_not_import_langchain_agents() -> None:
    """`langchain` (the agents package) is the `agents` extra: langchain-core users never load it."""
    code = "import sys, veil_langchain; print('langchain' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_agents_module_without_langchain_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['langchain'] = None\n"
        "try:\n    import veil_langchain.agents\nexcept ImportError as error:\n    print(error)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'veil-langchain[agents]'" in result.stdout
