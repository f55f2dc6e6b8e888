"""Async tests of this directory (ours and the langchain-tests suites) run under pytest-asyncio.

LangChain's partner packages set `asyncio_mode = "auto"`; the workspace keeps pytest-asyncio's
strict default, so the coroutine tests collected here are marked as they are collected.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: Any) -> None:
    function = getattr(obj, "__func__", obj)
    if inspect.iscoroutinefunction(function) and name.startswith("test"):
        marks = getattr(function, "pytestmark", [])
        if not any(mark.name == "asyncio" for mark in marks):
            pytest.mark.asyncio(function)
