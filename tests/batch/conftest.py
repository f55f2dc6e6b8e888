"""The corpus fixture of the batch tests (helpers in batch_corpora.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from batch_corpora import make_corpus


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return make_corpus(tmp_path)
