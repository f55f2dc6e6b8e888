"""The service guard: a missing server skips on a laptop and fails under CI."""

from __future__ import annotations

import pytest
from services import require_service


def test_a_missing_service_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required under CI"):
        require_service("PostgreSQL", "connection refused")


def test_a_missing_service_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_service("PostgreSQL", "connection refused")
