"""Shared by the Haystack tests: no telemetry (no network), a fresh tenant per test.

Components built from equal VeilConfigs share one Veil per process (by design); each test takes a
tenant of its own so that no test sees another's mappings.
"""

from __future__ import annotations

import os
import uuid

os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"  # before haystack is imported: it would post events

import pytest
from haystack_helpers import RULES_ONLY
from veil_haystack import VeilConfig


@pytest.fixture
def config() -> VeilConfig:
    """In-memory settings, rules engine, under a tenant of this test's own."""
    return VeilConfig(tenant=f"test-{uuid.uuid4().hex[:12]}", policy=dict(RULES_ONLY))
