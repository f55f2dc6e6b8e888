"""The public API of veil_haystack, and the direction of its dependencies."""

from __future__ import annotations

import subprocess
import sys

import veil_haystack


def test_public_names_are_frozen() -> None:
    assert sorted(veil_haystack.__all__) == [
        "RestoringCallback",
        "VeilChatGenerator",
        "VeilConfig",
        "VeilDocumentAnonymizer",
        "VeilDocumentFilter",
        "VeilRestorer",
        "VeilTextAnonymizer",
    ]
    for name in veil_haystack.__all__:
        assert getattr(veil_haystack, name).__module__.startswith("veil_haystack.")


def test_veil_haystack_imports_no_other_framework_and_veil_alone_imports_no_haystack() -> None:
    code = (
        "import sys, veil; assert 'haystack' not in sys.modules, 'veil imported haystack'; "
        "import veil_haystack; "
        "others = {'langchain_core', 'llama_index', 'veil_langchain', 'veil_llamaindex', 'torch'} & set(sys.modules); "
        "assert not others, sorted(others)"
    )
    env_flag = {"HAYSTACK_TELEMETRY_ENABLED": "False"}
    import os

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env_flag}, check=False
    )
    assert result.returncode == 0, result.stderr
