"""Engines shared by the detection tests of the rules.

An Engine holds only compiled patterns and is thread-safe, so one per mode serves the whole
session. `engine` runs a test once per mode: a behaviour that holds in both is tested in both.
These engines run the rules alone (`ner="off"`): the NER detectors and their fusion with the
rules are tested in tests/core/test_ner_*.py.
"""

from __future__ import annotations

import pytest

import veil
from veil.detect import MODES


@pytest.fixture(scope="session")
def strict() -> veil.Engine:
    """The default rules engine: strict mode, maximal recall."""
    return veil.Engine(veil.Policy(ner="off"))


@pytest.fixture(scope="session")
def permissive() -> veil.Engine:
    """Permissive mode: weak patterns need context, failed checksums are dropped."""
    return veil.Engine(veil.Policy(mode="permissive", ner="off"))


@pytest.fixture(scope="session", params=MODES)
def engine(request: pytest.FixtureRequest) -> veil.Engine:
    """Each mode in turn, for behaviour that does not depend on the mode."""
    return veil.Engine(veil.Policy(mode=request.param, ner="off"))
