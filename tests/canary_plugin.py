"""The canary plugin: no canary personal data (tests/canaries.py) in any log record of the test run.

For the whole session it sees every log record at DEBUG, from every logger, whatever its handlers
and propagation (uvicorn configures its own loggers not to propagate): the root logger is set to
DEBUG and a log-record factory scans each record as it is made, its message and the message of
any exception attached, before any handler or filter. The server helpers feed the same scanner
the output of the servers run in subprocesses and the /metrics pages of the gateways served in
process (tests/server/server_live.py, tests/server/metering.py).

A record may hold a canary only under an `Exemption` below (a logger, a message prefix and a test
folder, with the reason): the caller's own logging of what it sends *to* veil. Those are counted
apart in the summary.

At the end of the session, a finding is reported as a failed test `canary-scan::no-canary-in-logs`
(the run exits non-zero) with the source, the canary, the form it took, the test that was running
and an excerpt with the value masked. The summary line says how many records were scanned. Under
pytest-xdist each worker scans what its tests log and hands its counts and findings to the
controller when it finishes (`workeroutput`), which reports them all.
Loaded by tests/conftest.py; tests/security/test_canary_plugin.py proves that it fails a run.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from canaries import SCANNER

NODEID = "canary-scan::no-canary-in-logs"


@dataclass(frozen=True)
class Exemption:
    """Records that may hold a canary: the caller's own logging of what it sends *to* veil."""

    logger: str
    message_prefix: tuple[str, ...]
    tests: tuple[str, ...]
    """Only while a test under one of these paths runs."""
    why: str


EXEMPTIONS = (
    Exemption(
        "openai._base_client", ("Request options:",), ("tests/server/",),
        "the OpenAI SDK's DEBUG log of the request a server test sends to the gateway: the caller's own "
        "plaintext, before veil (behind veil's adapters the same log must show tokens only, and is scanned)",
    ),
    Exemption(
        "httpx2", ("HTTP Request: ",), ("tests/security/test_no_pii_at_rest.py", "tests/server/test_error_echo.py"),
        "the test client's INFO log of the URLs that the test writes canaries into on purpose (its bad requests)",
    ),
    Exemption(
        "aiosqlite", ("executing ", "operation "), ("tests/llamaindex/test_llm.py",),
        "LlamaIndex's chat memory, the application's own store of the conversation (before veil's LLM "
        "wrapper, which the model is behind), logs its SQL parameters at DEBUG",
    ),
    Exemption(
        "llama_index.core.node_parser.node_utils", ("> Adding chunk:",),
        ("tests/llamaindex/test_transform_and_postprocessor.py::test_transform_anonymizes_text_metadata",),
        "the test splits raw documents before veil on purpose (the transform's input nodes); the splitter "
        "logs its input at DEBUG (docs/llamaindex.md shows VeilTransform before the splitter)",
    ),
)  # fmt: skip


def _exempt(record: logging.LogRecord, text: str) -> bool:
    return any(
        record.name == e.logger and text.startswith(e.message_prefix) and SCANNER.where.startswith(e.tests)
        for e in EXEMPTIONS
    )


def _exception_text(exc_info: Any) -> str:
    """The messages of an exception and of its causes (never the traceback's source lines, which
    quote the tests' own code)."""
    if not exc_info or exc_info is True or not isinstance(exc_info, tuple) or exc_info[1] is None:
        return ""
    parts: list[str] = []
    exc: BaseException | None = exc_info[1]
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts += traceback.format_exception_only(type(exc), exc)
        exc = exc.__cause__ or exc.__context__
    return "".join(parts)


class _Factory:
    """Wraps the log-record factory: each record made is scanned, then returned untouched."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.previous(*args, **kwargs)
        try:
            text = record.getMessage()
        except Exception:  # a bad format string is the logging module's to report
            text = f"{record.msg!r} {record.args!r}"
        extra = _exception_text(record.exc_info)
        if extra:
            text = f"{text}\n{extra}"
        SCANNER.observe(f"log {record.name}", text, allowed=_exempt(record, text))
        return record


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if getattr(config, "_canary_factory", None) is not None:
        return
    factory = _Factory(logging.getLogRecordFactory())
    logging.setLogRecordFactory(factory)
    config._canary_factory = factory  # type: ignore[attr-defined]
    config._canary_root_level = logging.getLogger().level  # type: ignore[attr-defined]
    logging.getLogger().setLevel(logging.DEBUG)


def pytest_unconfigure(config: pytest.Config) -> None:
    factory = getattr(config, "_canary_factory", None)
    if factory is not None and logging.getLogRecordFactory() is factory:
        logging.setLogRecordFactory(factory.previous)
        logging.getLogger().setLevel(config._canary_root_level)  # type: ignore[attr-defined]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    SCANNER.where = item.nodeid
    try:
        return (yield)
    finally:
        SCANNER.where = "session"


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist's controller: a worker has finished; its scanner's counts and findings join
    this one's, reported below as if they were found here."""
    exported = getattr(node, "workeroutput", {}).get("canary_scan")
    if exported is not None:
        SCANNER.absorb(exported)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: the controller reports (pytest_testnodedown)
        workeroutput["canary_scan"] = SCANNER.export()
        return
    if not SCANNER.findings:
        return
    report = pytest.TestReport(
        nodeid=NODEID, location=("tests/canary_plugin.py", 0, NODEID), keywords={}, outcome="failed",
        longrepr=SCANNER.report(), when="call",
    )  # fmt: skip
    session.config.hook.pytest_runtest_logreport(report=report)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    verdict = f"{len(SCANNER.findings)} FOUND" if SCANNER.findings else "none found"
    terminalreporter.write_line(f"canary scan: {SCANNER.summary()}: {verdict}")
