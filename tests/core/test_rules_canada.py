"""Canadian identifiers: CA_SIN, CA_HEALTH_CARD (RAMQ, OHIP, BC PHN), CA_POSTAL_CODE and
CA_QC_DRIVER_LICENCE, in English and Quebec French sentences.
"""

from __future__ import annotations

import pytest
from span_checks import assert_low_score_in_strict_and_absent_in_permissive, found

import veil

# --- CA_SIN ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sin"),
    [
        ("Mon NAS est le 130 692 544.", "130 692 544"),
        ("Mon numéro d'assurance sociale : 130-692-544", "130-692-544"),
        ("My SIN is 130692544", "130692544"),
        ("Social insurance number: 123-456-782.", "123-456-782"),
        ("N.A.S. 130 692 544", "130 692 544"),
        ("numéro d'assurance-sociale 130692544, merci", "130692544"),
    ],
)
def test_sin_with_context_is_found_in_every_form(engine: veil.Engine, text: str, sin: str) -> None:
    assert found(engine, text) == [("CA_SIN", sin)]


@pytest.mark.parametrize(("text", "sin"), [("réf. 130692544", "130692544"), ("ref 130 692 544", "130 692 544")])
def test_sin_without_context_is_reported_in_strict_mode_only(
    strict: veil.Engine, permissive: veil.Engine, text: str, sin: str
) -> None:
    assert found(strict, text) == [("CA_SIN", sin)]
    assert found(permissive, text) == []


@pytest.mark.parametrize(
    ("text", "sin"),
    [
        ("SIN 130 692 545", "130 692 545"),
        ("Mon NAS est 046 454 286", "046 454 286"),
        ("NAS 823 456 785", "823 456 785"),
        ("Numéro d'assurance sociale : 999 999 999", "999 999 999"),
    ],
)
def test_sin_failing_its_check_is_low_score_in_strict_and_absent_in_permissive(
    strict: veil.Engine, permissive: veil.Engine, text: str, sin: str
) -> None:
    assert_low_score_in_strict_and_absent_in_permissive(strict, permissive, text, "CA_SIN", sin)


@pytest.mark.parametrize(
    "text",
    [
        "What is a SIN?",
        "Le NAS de Marie est perdu.",
        "SIN and NAS are the same number",
        "SINGLE 130 692 544",
    ],
)
def test_the_words_sin_and_nas_alone_are_not_entities(permissive: veil.Engine, text: str) -> None:
    assert found(permissive, text) == []


@pytest.mark.parametrize("text", ["tel 514-130-692-544", "ref 1.130.692.544"])
def test_sin_shaped_piece_of_a_longer_number_is_not_a_sin(engine: veil.Engine, text: str) -> None:
    assert [e for e, _ in found(engine, text) if e == "CA_SIN"] == []


def test_ten_digits_are_not_a_sin(engine: veil.Engine) -> None:
    assert [e for e, _ in found(engine, "SIN 130 692 5440") if e == "CA_SIN"] == []


# --- CA_HEALTH_CARD: RAMQ --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "card"),
    [
        ("Ma carte d'assurance maladie : TREJ 8507 1412", "TREJ 8507 1412"),
        ("RAMQ BOUH84540185, merci", "BOUH84540185"),
        ("Carte soleil TREJ 8557 1412", "TREJ 8557 1412"),
        ("Quebec health card TREJ 8502 2912", "TREJ 8502 2912"),
        ("sans contexte TREJ 8507 1412", "TREJ 8507 1412"),
    ],
)
def test_ramq_number_with_a_real_birth_date_is_found(engine: veil.Engine, text: str, card: str) -> None:
    assert found(engine, text) == [("CA_HEALTH_CARD", card)]


@pytest.mark.parametrize(
    ("text", "card"),
    [
        ("RAMQ TREJ 8513 1412", "TREJ 8513 1412"),  # month 13
        ("RAMQ TREJ 8502 3012", "TREJ 8502 3012"),  # 30 February
        ("carte soleil TREJ 8563 0112", "TREJ 8563 0112"),  # month 63 - 50 = 13
    ],
)
def test_ramq_number_with_an_impossible_date_is_low_score_in_strict_and_absent_in_permissive(
    strict: veil.Engine, permissive: veil.Engine, text: str, card: str
) -> None:
    assert_low_score_in_strict_and_absent_in_permissive(strict, permissive, text, "CA_HEALTH_CARD", card)


def test_four_letters_and_four_digits_are_not_a_ramq_number(engine: veil.Engine) -> None:
    assert found(engine, "Code ABCD 1234") == []


# --- CA_HEALTH_CARD: OHIP and BC PHN ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "card"),
    [
        ("OHIP 1234 567 897", "1234 567 897"),
        ("Ontario health card 1234567897 AB", "1234567897 AB"),
        ("numéro de carte santé 1234-567-897-AB", "1234-567-897-AB"),
        ("PHN 9123 456 702", "9123 456 702"),
        ("Carte santé C.-B. (PHN) : 9123456702", "9123456702"),
    ],
)
def test_ohip_and_bc_phn_with_context_are_found(engine: veil.Engine, text: str, card: str) -> None:
    assert found(engine, text) == [("CA_HEALTH_CARD", card)]


def test_ohip_number_failing_luhn_is_not_a_health_card(engine: veil.Engine) -> None:
    assert [e for e, _ in found(engine, "OHIP 1234 567 898") if e == "CA_HEALTH_CARD"] == []


@pytest.mark.parametrize(
    "text", ["My BC personal health number is 9123456702", "numéro d'assurance maladie 9123 456 702"]
)
def test_bc_phn_next_to_the_word_number_is_still_a_health_card(engine: veil.Engine, text: str) -> None:
    assert [e for e, _ in found(engine, text)] == ["CA_HEALTH_CARD"]


# --- CA_POSTAL_CODE --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Code postal : H2X 1Y4.", "H2X 1Y4"),
        ("postal code K1A-0B1", "K1A-0B1"),
        ("Envoyez à H2X1Y4 svp", "H2X1Y4"),
        ("Ship to T5G 8B7", "T5G 8B7"),
    ],
)
def test_upper_case_postal_code_is_found_without_context(engine: veil.Engine, text: str, code: str) -> None:
    assert found(engine, text) == [("CA_POSTAL_CODE", code)]


def test_two_postal_codes_are_two_spans(engine: veil.Engine) -> None:
    text = "code postal H2X 1Y4 et T5G 8B7"
    assert found(engine, text) == [("CA_POSTAL_CODE", "H2X 1Y4"), ("CA_POSTAL_CODE", "T5G 8B7")]


def test_lower_case_postal_code_needs_context_in_permissive_mode(strict: veil.Engine, permissive: veil.Engine) -> None:
    assert found(strict, "voir h3z2y7") == [("CA_POSTAL_CODE", "h3z2y7")]
    assert found(permissive, "voir h3z2y7") == []
    assert found(permissive, "mon code postal: h3z 2y7") == [("CA_POSTAL_CODE", "h3z 2y7")]


@pytest.mark.parametrize(
    "code", ["D2X 1Y4", "F2X 1Y4", "I2X 1Y4", "O2X 1Y4", "Q2X 1Y4", "U2X 1Y4", "W1A 1A1", "Z2X 1Y4"]
)
def test_letters_canada_post_never_uses_first_are_not_postal_codes(engine: veil.Engine, code: str) -> None:
    assert found(engine, f"code postal {code}") == []


@pytest.mark.parametrize("text", ["H2X 1Y", "H2X 1Y45", "AH2X 1Y4"])
def test_postal_code_shapes_that_are_too_short_or_glued_are_not_found(engine: veil.Engine, text: str) -> None:
    assert found(engine, text) == []


# --- CA_QC_DRIVER_LICENCE --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "licence"),
    [
        ("Permis de conduire : T1234-567890-12", "T1234-567890-12"),
        ("SAAQ T1234 567890 12", "T1234 567890 12"),
        ("Quebec driver's licence B123456789012.", "B123456789012"),
        ("ref T1234-567890-12", "T1234-567890-12"),
    ],
)
def test_quebec_driver_licence_is_found(engine: veil.Engine, text: str, licence: str) -> None:
    assert found(engine, text) == [("CA_QC_DRIVER_LICENCE", licence)]


def test_sin_followed_by_a_street_name_is_still_reported_in_strict_mode(strict: veil.Engine) -> None:
    assert ("CA_SIN", "130 692 544") in found(strict, "ref 130 692 544 Queen St")
