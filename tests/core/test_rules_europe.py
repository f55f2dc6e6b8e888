"""European identifiers: FR_NIR, DE_TAX_ID, NL_BSN, BE_NATIONAL_NUMBER, ES_DNI (DNI and NIE),
IT_FISCAL_CODE and EU_VAT, in English and French sentences (and the national words that announce
them). Validation is python-stdnum's; the stdnum test values themselves are in test_stdnum_cases.
"""

from __future__ import annotations

import pytest
from span_checks import assert_low_score_in_strict_and_absent_in_permissive, found

import veil

# --- FR_NIR ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "nir"),
    [
        ("Numéro de sécurité sociale : 1 93 02 35 486 714 41.", "1 93 02 35 486 714 41"),
        ("Ma carte vitale porte le 293022A04801503", "293022A04801503"),
        ("NIR 253072B07300470, Haute-Corse", "253072B07300470"),
        ("French social security number 2 95 10 99 126 111 93", "2 95 10 99 126 111 93"),
        ("sans contexte 1 93 02 35 486 714 41", "1 93 02 35 486 714 41"),
    ],
)
def test_nir_with_a_valid_key_is_found(engine: veil.Engine, text: str, nir: str) -> None:
    assert found(engine, text) == [("FR_NIR", nir)]


def test_nir_failing_its_key_is_low_score_in_strict_and_absent_in_permissive(
    strict: veil.Engine, permissive: veil.Engine
) -> None:
    assert_low_score_in_strict_and_absent_in_permissive(
        strict, permissive, "NIR 295109912611199", "FR_NIR", "295109912611199"
    )


def test_spaced_nir_failing_its_key_is_absent_in_permissive_mode(permissive: veil.Engine) -> None:
    assert found(permissive, "NIR 1 93 02 35 486 714 42") == []


# --- DE_TAX_ID -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tax_id"),
    [
        ("Meine Steuer-ID ist 36 574 261 809.", "36 574 261 809"),
        ("German tax ID 36574261809", "36574261809"),
        ("Identifikationsnummer: 36574261809", "36574261809"),
    ],
)
def test_german_tax_id_with_context_is_found(engine: veil.Engine, text: str, tax_id: str) -> None:
    assert found(engine, text) == [("DE_TAX_ID", tax_id)]


def test_german_tax_id_without_context_is_reported_in_strict_mode_only(
    strict: veil.Engine, permissive: veil.Engine
) -> None:
    assert found(strict, "ref 36574261809") == [("DE_TAX_ID", "36574261809")]
    assert found(permissive, "ref 36574261809") == []


@pytest.mark.parametrize("text", ["Steuer-ID 36574261890", "Steuer-ID 36554266806"])
def test_german_tax_id_failing_its_check_is_never_reported(engine: veil.Engine, text: str) -> None:
    assert found(engine, text) == []


# --- NL_BSN ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bsn"),
    [("BSN: 1112.22.333", "1112.22.333"), ("Mijn burgerservicenummer is 111222333.", "111222333")],
)
def test_dutch_bsn_with_context_is_found(engine: veil.Engine, text: str, bsn: str) -> None:
    assert found(engine, text) == [("NL_BSN", bsn)]


def test_dutch_bsn_failing_the_eleven_test_is_never_reported(engine: veil.Engine) -> None:
    assert found(engine, "BSN 1112.52.333") == []


def test_dutch_bsn_without_context_is_reported_in_strict_mode_only(
    strict: veil.Engine, permissive: veil.Engine
) -> None:
    assert found(strict, "ref 111222333") == [("NL_BSN", "111222333")]
    assert found(permissive, "ref 111222333") == []


# --- BE_NATIONAL_NUMBER ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("Numéro national : 85.07.30-033.28", "85.07.30-033.28"),
        ("Belgian national number 17.07.30 033.84.", "17.07.30 033.84"),
        ("sans contexte 85.07.30-033.28", "85.07.30-033.28"),
        ("registre national 85073003328", "85073003328"),
    ],
)
def test_belgian_national_number_is_found(engine: veil.Engine, text: str, number: str) -> None:
    assert found(engine, text) == [("BE_NATIONAL_NUMBER", number)]


def test_compact_belgian_national_number_needs_context_in_permissive_mode(
    strict: veil.Engine, permissive: veil.Engine
) -> None:
    assert found(strict, "ref 85073003328") == [("BE_NATIONAL_NUMBER", "85073003328")]
    assert found(permissive, "ref 85073003328") == []


def test_belgian_national_number_failing_mod_97_is_low_score_in_strict_and_absent_in_permissive(
    strict: veil.Engine, permissive: veil.Engine
) -> None:
    assert_low_score_in_strict_and_absent_in_permissive(
        strict, permissive, "ref 85.07.30-033.29", "BE_NATIONAL_NUMBER", "85.07.30-033.29"
    )


# --- ES_DNI (DNI and NIE) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Mi DNI es 54362315-K.", "54362315-K"),
        ("DNI espagnol : 54362315K", "54362315K"),
        ("NIE X-2482300W", "X-2482300W"),
        ("Spanish foreigner number (NIE) Y8063915Z", "Y8063915Z"),
        ("ref Z8078221M", "Z8078221M"),
    ],
)
def test_spanish_dni_and_nie_are_found(engine: veil.Engine, text: str, value: str) -> None:
    assert found(engine, text) == [("ES_DNI", value)]


@pytest.mark.parametrize(("text", "value"), [("DNI 54362315Z", "54362315Z"), ("NIE X-2482300A", "X-2482300A")])
def test_spanish_id_with_a_wrong_letter_is_low_score_in_strict_and_absent_in_permissive(
    strict: veil.Engine, permissive: veil.Engine, text: str, value: str
) -> None:
    assert_low_score_in_strict_and_absent_in_permissive(strict, permissive, text, "ES_DNI", value)


@pytest.mark.parametrize(("text", "value"), [("NIE x2482300w", "x2482300w"), ("DNI 54362315k", "54362315k")])
def test_lower_case_spanish_id_is_found(engine: veil.Engine, text: str, value: str) -> None:
    assert found(engine, text) == [("ES_DNI", value)]


# --- IT_FISCAL_CODE --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Il mio codice fiscale è RCCMNL83S18D969H.", "RCCMNL83S18D969H"),
        ("Mon code fiscal italien : MRTNTN23M02D969P", "MRTNTN23M02D969P"),
        ("Italian fiscal code RSSMRA45C12F20RX", "RSSMRA45C12F20RX"),
        ("ref MRSMSR81D60Z611H", "MRSMSR81D60Z611H"),
    ],
)
def test_italian_fiscal_code_is_found(engine: veil.Engine, text: str, code: str) -> None:
    assert found(engine, text) == [("IT_FISCAL_CODE", code)]


def test_italian_fiscal_code_with_a_wrong_check_letter_is_low_score_in_strict_and_absent_in_permissive(
    strict: veil.Engine, permissive: veil.Engine
) -> None:
    assert_low_score_in_strict_and_absent_in_permissive(
        strict, permissive, "CF FOXDRA26C24H872A", "IT_FISCAL_CODE", "FOXDRA26C24H872A"
    )


# --- EU_VAT ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "vat"),
    [
        ("TVA intracommunautaire : FR 61 954 506 077", "FR 61 954 506 077"),
        ("VAT number DE136695976.", "DE136695976"),
        ("ref DE136695976", "DE136695976"),
    ],
)
def test_eu_vat_number_is_found(engine: veil.Engine, text: str, vat: str) -> None:
    assert found(engine, text) == [("EU_VAT", vat)]


def test_eu_vat_number_failing_its_check_is_never_reported(engine: veil.Engine) -> None:
    assert found(engine, "VAT DE136695977") == []
