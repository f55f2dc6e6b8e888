"""python-stdnum's own test values, detected in sentences.

`tests/data/stdnum_cases.jsonl` holds valid and invalid values from python-stdnum's doctests
(see tests/data/README.md). Each valid value, in an English or French sentence with its context
word, is found in permissive mode as its entity with its exact span; an invalid one is not
reported as that entity. Rows where veil departs from stdnum are listed below, with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import veil

DATA = Path(__file__).resolve().parents[1] / "data" / "stdnum_cases.jsonl"
ROWS: list[dict[str, object]] = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]

# stdnum module → (veil entity, French context, English context).
MODULES: dict[str, tuple[str, str, str]] = {
    "iban": ("IBAN", "IBAN", "IBAN"),
    "ca_sin": ("CA_SIN", "NAS", "SIN"),
    "fr_nir": ("FR_NIR", "NIR", "French social security number"),
    "de_idnr": ("DE_TAX_ID", "Steuer-ID", "German tax ID"),
    "nl_bsn": ("NL_BSN", "BSN", "BSN"),
    "be_nn": ("BE_NATIONAL_NUMBER", "registre national", "Belgian national register"),
    "es_dni": ("ES_DNI", "DNI", "DNI"),
    "es_nie": ("ES_DNI", "NIE", "NIE"),
    "it_codicefiscale": ("IT_FISCAL_CODE", "codice fiscale", "Italian fiscal code"),
}

# Valid values veil does not report, on purpose.
NOT_READ_ON_PURPOSE: dict[str, str] = {
    "1123456789 0": "a space before the check digit alone is not a written form of the IdNr",
    "1112345678 6": "a space before the check digit alone is not a written form of the IdNr",
    "00743110157": "the 11-digit codice fiscale of a company is not personal data",
}
_BBAN_LAYOUT = "veil checks an IBAN's mod 97 and country length, not each country's BBAN layout"
# Invalid values veil reports, on purpose.
REPORTED_ON_PURPOSE: dict[str, str] = dict.fromkeys(
    ("BG93 BNBG 9661 1A20 3456 78", "GI22 NW3K 0000 0000 7099 453", "NL56 3003 0A17 1643 00"), _BBAN_LAYOUT
)

# Valid values veil misses: known gaps.
KNOWN_MISSES: dict[str, str] = {}


def cases(valid: bool) -> list[object]:
    params = []
    for row in ROWS:
        if row["valid"] is not valid or row["module"] not in MODULES:
            continue
        value = str(row["value"])
        marks = []
        if value in KNOWN_MISSES:
            marks = [pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[value])]
        elif value in NOT_READ_ON_PURPOSE or value in REPORTED_ON_PURPOSE:
            continue
        params.append(pytest.param(row["module"], value, id=f"{row['module']}:{value}", marks=marks))
    return params


def sentences(module: str, value: str) -> list[str]:
    _, french, english = MODULES[module]
    return [f"Mon {french} est {value}, merci.", f"My {english} is {value}, thanks."]


def test_the_data_file_holds_a_small_subset_of_the_modules_asked_for() -> None:
    assert 100 <= len(ROWS) <= 300
    assert {row["module"] for row in ROWS} == {*MODULES, "luhn"}


def test_every_exception_listed_here_is_a_row_of_the_data_file() -> None:
    values = {row["value"] for row in ROWS}
    for listed in (NOT_READ_ON_PURPOSE, REPORTED_ON_PURPOSE, KNOWN_MISSES):
        assert set(listed) <= values


@pytest.mark.parametrize(("module", "value"), cases(valid=True))
def test_valid_value_in_a_sentence_with_context_is_found_with_its_exact_span(
    permissive: veil.Engine, module: str, value: str
) -> None:
    entity = MODULES[module][0]
    for text in sentences(module, value):
        start = text.index(value)
        spans = [(s.entity, s.start, s.end) for s in permissive.detect(text)]
        assert (entity, start, start + len(value)) in spans, text


@pytest.mark.parametrize(("module", "value"), cases(valid=False))
def test_invalid_value_in_a_sentence_with_context_is_low_score_in_strict_and_absent_in_permissive(
    strict: veil.Engine, permissive: veil.Engine, module: str, value: str
) -> None:
    entity = MODULES[module][0]
    for text in sentences(module, value):
        assert [s for s in permissive.detect(text) if s.entity == entity] == [], text
        assert all(s.score < 0.5 for s in strict.detect(text) if s.entity == entity), text


def test_departures_from_stdnum_listed_here_still_hold(permissive: veil.Engine) -> None:
    modules = {str(row["value"]): str(row["module"]) for row in ROWS}
    for value, should_be_found in [
        *((value, False) for value in NOT_READ_ON_PURPOSE),
        *((value, True) for value in REPORTED_ON_PURPOSE),
    ]:
        module = modules[value]
        for text in sentences(module, value):
            found = [s for s in permissive.detect(text) if s.entity == MODULES[module][0]]
            assert bool(found) is should_be_found, text


@pytest.mark.parametrize(("value", "valid"), [(row["value"], row["valid"]) for row in ROWS if row["module"] == "luhn"])
def test_a_luhn_check_alone_does_not_make_a_card(permissive: veil.Engine, value: str, valid: bool) -> None:
    # None of stdnum's Luhn samples has a card's length and issuer prefix: valid or not, no card.
    for text in (f"Ma carte de crédit : {value}, merci.", f"My credit card is {value}, thanks."):
        assert [s for s in permissive.detect(text) if s.entity == "CREDIT_CARD"] == [], text
