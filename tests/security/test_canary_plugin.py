"""The canary check can fail: a canary logged on purpose in a test run of its own fails that run,
whichever logger, level or form it takes; a clean run passes and says how much it scanned."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from canaries import CANARIES, CANARY_LIST, Scanner

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture
def sub_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytest run in a process of its own with the canary plugin loaded (its records never reach
    this session's scanner)."""
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # a fast start: no third-party plugins
    return pytester


PLUGIN_ONLY = ("-p", "canary_plugin", "-p", "no:cacheprovider")


LEAKS = {
    "warning_on_a_library_logger": 'logging.getLogger("veil_server").warning("client %s", CANARIES["email"])',
    "debug_on_a_logger_that_does_not_propagate": (
        'log = logging.getLogger("uvicorn.access"); log.propagate = False; log.setLevel("DEBUG"); '
        'log.debug("GET /v1/models/%s", urllib.parse.quote(CANARIES["email"], safe=""))'
    ),
    "in_the_message_of_a_logged_exception": (
        'try:\n        raise ValueError("bad card " + CANARIES["card"])\n'
        '    except ValueError:\n        logging.getLogger("x").exception("refused")'
    ),
    "uppercased": 'logging.getLogger("x").error(CANARIES["name"].upper())',
    "without_spaces": 'logging.getLogger("x").error("nas=" + CANARIES["sin"].replace(" ", ""))',
    "in_base64": 'logging.getLogger("x").info("b=" + base64.b64encode(("xx" + CANARIES["iban"]).encode()).decode())',
}


def write_leaky_tests(sub_run: pytest.Pytester) -> None:
    """test_leaky.py: one test per way of leaking in LEAKS."""
    tests = "".join(f"\n\ndef test_{name}():\n    {statement}\n" for name, statement in LEAKS.items())
    sub_run.makepyfile(test_leaky="import base64, logging, urllib.parse\nfrom canaries import CANARIES\n" + tests)


def test_a_canary_logged_in_a_test_fails_the_run_and_names_each_test(sub_run: pytest.Pytester) -> None:
    write_leaky_tests(sub_run)
    result = sub_run.runpytest_subprocess(*PLUGIN_ONLY)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=len(LEAKS), failed=1)
    result.stdout.fnmatch_lines(["*canary-scan::no-canary-in-logs*", f"{len(LEAKS)} canary value(s) found*"])
    for name in LEAKS:
        result.stdout.fnmatch_lines([f"*test_leaky.py::test_{name}*"])
    for value in CANARIES.values():
        assert value not in result.stdout.str(), "the report must mask the value it found"


def test_under_pytest_xdist_the_workers_findings_fail_the_run(sub_run: pytest.Pytester) -> None:
    # Each worker scans only what its own tests log: without handing its findings to the
    # controller, a parallel run would pass whatever its tests leaked.
    # (pytest-xdist is a dev dependency: the suite itself runs under it.)
    write_leaky_tests(sub_run)
    sub_run.makepyfile(test_clean="def test_nothing():\n    pass\n")
    result = sub_run.runpytest_subprocess(*PLUGIN_ONLY, "-p", "xdist.plugin", "-n", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=len(LEAKS) + 1, failed=1)
    result.stdout.fnmatch_lines([f"{len(LEAKS)} canary value(s) found*", "canary scan: scanned * log records*"])
    for name in LEAKS:
        result.stdout.fnmatch_lines([f"*test_leaky.py::test_{name}*"])


def test_a_clean_run_passes_and_reports_what_it_scanned(sub_run: pytest.Pytester) -> None:
    sub_run.makepyfile(
        test_clean="""
import logging

def test_logs_ids_only():
    logging.getLogger("veil_server").debug("request %s: %d values replaced", "req_1", 4)
"""
    )
    result = sub_run.runpytest_subprocess(*PLUGIN_ONLY)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["canary scan: scanned * log records for 8 canaries: none found"])


def test_a_record_logged_at_session_end_is_caught_too(sub_run: pytest.Pytester) -> None:
    sub_run.makeconftest(
        """
import logging
import pytest
from canaries import CANARIES

@pytest.fixture(scope="session", autouse=True)
def leaks_at_teardown():
    yield
    logging.getLogger("teardown").debug("closing %s", CANARIES["phone"])
"""
    )
    sub_run.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = sub_run.runpytest_subprocess(*PLUGIN_ONLY)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*[[]log teardown[]] phone (plain)*"])


@pytest.mark.parametrize("canary", CANARY_LIST, ids=lambda c: c.name)
def test_the_scanner_finds_each_canary_in_every_form_and_nothing_in_its_tokens(canary: object) -> None:
    from canaries import Canary

    assert isinstance(canary, Canary)
    scanner = Scanner()
    for form, needle in canary.forms().items():
        assert scanner.find(f"…{needle.upper()}…"), form
    for prefix in ("", "a", "ab"):
        encoded = base64.b64encode(f"{prefix}{canary.value}!".encode()).decode()
        assert (canary.name, f"base64-{len(prefix)}") in scanner.find(encoded)
    assert scanner.find_bytes(f"x{canary.value}x".encode("utf-16-le"))
    assert scanner.find("{{EMAIL_1}} {{PHONE_1}} {{CA_SIN_1}} {{CREDIT_CARD_1}} {{IBAN_1}} {{PERSON_1}}") == []


def test_a_finding_is_kept_with_its_source_and_the_value_masked() -> None:
    scanner = Scanner()
    scanner.where = "tests/x.py::test_y"
    assert scanner.observe("log veil_server", f"to {CANARIES['email']} now") == [("email", "plain")]
    assert scanner.observe("log veil_server", "to {{EMAIL_1}} now") == []
    (finding,) = scanner.findings
    assert finding.where == "tests/x.py::test_y" and finding.excerpt == "to <EMAIL> now"
    assert scanner.counts == {"log records": 2}
    assert CANARIES["email"] not in scanner.report()
