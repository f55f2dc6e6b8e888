"""Presidio's recognizer test cases, run through veil.

`tests/data/presidio_cases.jsonl` holds literal cases from Presidio's recognizer tests (see
tests/data/README.md): a text, an entity, and the spans Presidio expects (none for a negative
case). veil agrees with a positive case when permissive mode reports exactly those spans as the
matching entity, and with a negative one when permissive mode reports none (strict mode may
report it with a low score: it is where failed checksums go).

Where veil differs on purpose, the case is listed below with the reason (`STRICT_ONLY`,
`DISAGREE`). Bugs these cases revealed (a punycode TLD, dashed IBANs, IPv6 with an embedded IPv4,
the tail of an invalid IPv6) are fixed; their cases now agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import veil

DATA = Path(__file__).resolve().parents[1] / "data" / "presidio_cases.jsonl"
ROWS: dict[str, dict[str, object]] = {
    row["id"]: row for row in map(json.loads, DATA.read_text(encoding="utf-8").splitlines())
}

ENTITIES = {
    "CA_SIN": "CA_SIN",
    "CREDIT_CARD": "CREDIT_CARD",
    "EMAIL_ADDRESS": "EMAIL",
    "IBAN_CODE": "IBAN",
    "IP_ADDRESS": "IP_ADDRESS",
    "PHONE_NUMBER": "PHONE",
    "URL": "URL",
}

_BARE_SIN = "nine digits pass the SIN check one time in ten: without 'SIN'/'NAS' near, strict mode only"
# Positive cases veil reports in strict mode only (score below the permissive threshold).
STRICT_ONLY: dict[str, str] = {
    **{f"presidio-{n:04d}": _BARE_SIN for n in range(41, 48)},
    "presidio-1133": "a number without a country code is read as North American; a Chinese mobile is not valid there",
}

_NO_ONE = "the IPv6 loopback and unspecified addresses identify no one: never reported"
_CIDR = "veil reports the address of a CIDR block; the prefix length (/24) identifies no one"
_BARE_DOMAIN = "a bare domain is not a URL for veil: it needs a scheme or www. (domains are not personal data)"
_QUOTES = "the quotes around a URL are not part of it"
_NO_TLD = "veil reports any scheme:// or www. link, intranet hosts without a top-level domain included"
# Cases where veil's answer is not Presidio's, on purpose.
DISAGREE: dict[str, str] = {
    "presidio-0806": _NO_ONE,
    "presidio-0891": _NO_ONE,
    "presidio-0900": _NO_ONE,
    "presidio-0893": _CIDR,
    "presidio-0897": _CIDR,
    "presidio-0872": "a five-part dotted number (1.2.3.4.5) is a version or an OID, not an IPv4 address",
    "presidio-1125": "phones are validated for North America and 8 European regions; a 9-digit number "
    "with a trunk 0 is more often a Canadian identifier than a phone",
    "presidio-1462": _BARE_DOMAIN,
    "presidio-1463": _BARE_DOMAIN,
    "presidio-1464": _QUOTES,
    "presidio-1465": _QUOTES,
    "presidio-1466": _NO_TLD,
    "presidio-1467": _NO_TLD,
    "presidio-1468": _NO_TLD,
}


def spans_of(engine: veil.Engine, row: dict[str, object]) -> list[veil.Span]:
    entity = ENTITIES[str(row["entity"])]
    return [span for span in engine.detect(str(row["text"])) if span.entity == entity]


def matches_expectation(spans: list[veil.Span], row: dict[str, object]) -> bool:
    expected = [tuple(pair) for pair in row["expected_spans"]]  # type: ignore[attr-defined]
    found = [(span.start, span.end) for span in spans]
    # A few positive cases give a count and no offsets.
    return found == expected if expected else len(found) == row["expected_count"]


def agrees(strict: veil.Engine, permissive: veil.Engine, row: dict[str, object]) -> bool:
    if row["expected_count"]:
        return matches_expectation(spans_of(permissive, row), row)
    return spans_of(permissive, row) == [] and all(span.score < 0.5 for span in spans_of(strict, row))


def params(ids: object) -> list[object]:
    return [pytest.param(case_id, id=f"{case_id}:{ROWS[case_id]['text']}") for case_id in ids]  # type: ignore[attr-defined]


AGREED = [case_id for case_id in ROWS if case_id not in {*STRICT_ONLY, *DISAGREE}]


def test_the_data_file_holds_at_most_150_cases_of_the_entities_veil_maps() -> None:
    assert len(ROWS) <= 150
    assert {row["entity"] for row in ROWS.values()} == set(ENTITIES)


def test_every_listed_case_is_in_the_data_file_and_listed_once() -> None:
    listed = [*STRICT_ONLY, *DISAGREE]
    assert len(listed) == len(set(listed))
    assert set(listed) <= set(ROWS)


@pytest.mark.parametrize("case_id", params(AGREED))
def test_veil_agrees_with_presidio(strict: veil.Engine, permissive: veil.Engine, case_id: str) -> None:
    assert agrees(strict, permissive, ROWS[case_id])


@pytest.mark.parametrize("case_id", params(STRICT_ONLY))
def test_weak_positive_case_is_reported_in_strict_mode_only(
    strict: veil.Engine, permissive: veil.Engine, case_id: str
) -> None:
    row = ROWS[case_id]
    assert matches_expectation(spans_of(strict, row), row)
    assert spans_of(permissive, row) == []


@pytest.mark.parametrize("case_id", params(DISAGREE))
def test_deliberate_disagreement_with_presidio_still_holds(
    strict: veil.Engine, permissive: veil.Engine, case_id: str
) -> None:
    row = ROWS[case_id]
    assert not agrees(strict, permissive, row)
    if row["expected_count"]:
        assert not matches_expectation(spans_of(strict, row), row)
