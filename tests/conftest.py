"""Settings for the whole test suite: no test may reach the network beyond loopback.

Some frameworks phone home when imported or used (Haystack's telemetry, LangSmith tracing,
posthog, Hugging Face hub checks). They are switched off here, before any test module imports
them, whichever test folder is run on its own.

The canary plugin (tests/canary_plugin.py) watches every log record of the run for canary
personal data (tests/canaries.py) and fails the run if one appears.
"""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["pytester", "canary_plugin"]

for variable, value in {
    "HAYSTACK_TELEMETRY_ENABLED": "False",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_TRACING": "false",
    "DO_NOT_TRACK": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}.items():
    os.environ[variable] = value


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runslow",
        action="store_true",
        default=False,
        help="also run the tests marked slow (long fuzzing, thorough regex and property runs)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `slow` are the long versions of the reliability checks: skipped unless
    --runslow (docs/reliability.md), so the normal suite stays fast."""
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="long run: pass --runslow (see docs/reliability.md)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
