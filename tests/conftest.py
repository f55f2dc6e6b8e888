"""Settings for the whole test suite: no test may reach the network beyond loopback.

Some frameworks phone home when imported or used (Haystack's telemetry, LangSmith tracing,
posthog, Hugging Face hub checks). They are switched off here, before any test module imports
them, whichever test folder is run on its own.
"""

from __future__ import annotations

import os

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
