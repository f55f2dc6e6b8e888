"""Payment data: CREDIT_CARD (Luhn + issuer ranges), IBAN (mod 97), BANK_ACCOUNT (Canadian cheque).

A number that fails its checksum is dropped in permissive mode and reported with a low score
(< 0.5) in strict mode, where recall comes first.
"""

from __future__ import annotations

import pytest
from span_checks import assert_low_score_in_strict_and_absent_in_permissive, found

import veil

# --- CREDIT_CARD -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "card"),
    [
        ("Pay with my Visa 4111 1111 1111 1111 please.", "4111 1111 1111 1111"),
        ("Payez avec la carte 4111111111111111, merci.", "4111111111111111"),
        ("Card 5500-0000-0000-0004 expires soon", "5500-0000-0000-0004"),
        ("Ma Mastercard 5555 5555 5555 4444 est bloquée", "5555 5555 5555 4444"),
        ("Discover 6011 0009 9013 9424", "6011 0009 9013 9424"),
        ("carte JCB 3528000700000000", "3528000700000000"),
        ("Diners Club 30569309025904", "30569309025904"),
        ("UnionPay 6212345678901232", "6212345678901232"),
        ("old Visa 4222222222222", "4222222222222"),
        ("Visa 4111 1111 1111 1111, exp 12/26", "4111 1111 1111 1111"),
    ],
)
def test_valid_card_is_found_with_its_exact_span(engine: veil.Engine, text: str, card: str) -> None:
    assert found(engine, text) == [("CREDIT_CARD", card)]


@pytest.mark.parametrize(
    "card", ["2221 0000 0000 0009", "2720 9900 0000 0007", "2221000000000009", "2720-9900-0000-0007"]
)
def test_mastercard_2_series_is_a_card_without_context(engine: veil.Engine, card: str) -> None:
    assert found(engine, f"ref {card} ok") == [("CREDIT_CARD", card)]


@pytest.mark.parametrize("number", ["2220 9999 9999 9991", "2721 0000 0000 0004"])
def test_luhn_valid_numbers_just_outside_the_2_series_need_card_words(permissive: veil.Engine, number: str) -> None:
    assert found(permissive, f"ref {number} ok") == []
    assert found(permissive, f"carte {number}") == [("CREDIT_CARD", number)]


@pytest.mark.parametrize(
    ("text", "card"),
    [
        ("Amex 3782 822463 10005 on file", "3782 822463 10005"),
        ("Ma carte American Express : 3782-822463-10005.", "3782-822463-10005"),
        ("amex 371449635398431", "371449635398431"),
        ("ref 3714 496353 98431", "3714 496353 98431"),
    ],
)
def test_amex_in_4_6_5_groups_or_compact_is_a_card(engine: veil.Engine, text: str, card: str) -> None:
    assert found(engine, text) == [("CREDIT_CARD", card)]


def test_two_cards_in_one_sentence_are_two_spans(engine: veil.Engine) -> None:
    text = "cartes 4111111111111111 et 5500000000000004"
    assert found(engine, text) == [("CREDIT_CARD", "4111111111111111"), ("CREDIT_CARD", "5500000000000004")]


def test_a_glued_trailing_group_is_left_out_of_the_card(engine: veil.Engine) -> None:
    assert found(engine, "4111 1111 1111 1111 1111") == [("CREDIT_CARD", "4111 1111 1111 1111")]


@pytest.mark.parametrize(
    ("text", "card"),
    [
        ("card 4111 1111 1111 1112 declined", "4111 1111 1111 1112"),
        ("carte 5500 0000 0000 0005 refusée", "5500 0000 0000 0005"),
        ("Mastercard 2221 0000 0000 0008", "2221 0000 0000 0008"),
    ],
)
def test_card_failing_luhn_is_low_score_in_strict_and_absent_in_permissive(
    strict: veil.Engine, permissive: veil.Engine, text: str, card: str
) -> None:
    assert_low_score_in_strict_and_absent_in_permissive(strict, permissive, text, "CREDIT_CARD", card)


@pytest.mark.parametrize("number", ["1000 0000 0000 0008", "1000-0000-0000-0008", "9999 1234 5678 9012 341"])
def test_luhn_valid_number_outside_issuer_ranges_is_a_card_only_near_card_words(
    strict: veil.Engine, permissive: veil.Engine, number: str
) -> None:
    assert found(permissive, f"ref {number}") == []
    assert strict.detect(f"ref {number}")[0].score < 0.5
    assert found(permissive, f"debit card {number}") == [("CREDIT_CARD", number)]
    assert found(permissive, f"ma carte Interac {number}") == [("CREDIT_CARD", number)]


def test_mixed_separators_are_not_a_card(engine: veil.Engine) -> None:
    assert [entity for entity, _ in found(engine, "4111 1111-1111 1111") if entity == "CREDIT_CARD"] == []


@pytest.mark.parametrize(
    ("text", "card"),
    [("Visa 4111111111111111 12/26", "4111111111111111"), ("card 4111111111111111 0", "4111111111111111")],
)
def test_compact_card_followed_by_a_short_number_is_found(engine: veil.Engine, text: str, card: str) -> None:
    assert found(engine, text) == [("CREDIT_CARD", card)]


@pytest.mark.parametrize(
    ("text", "card"),
    [("lignes 1 4111111111111111", "4111111111111111"), ("qty 123 4111 1111 1111 1111", "4111 1111 1111 1111")],
)
def test_card_preceded_by_a_short_number_is_found(engine: veil.Engine, text: str, card: str) -> None:
    assert found(engine, text) == [("CREDIT_CARD", card)]


def test_a_leading_digit_does_not_make_a_shorter_card_out_of_the_real_one(engine: veil.Engine) -> None:
    assert found(engine, "ref 4 5500 0000 0000 0004") == [("CREDIT_CARD", "5500 0000 0000 0004")]


def test_a_trailing_digit_is_not_glued_to_a_compact_card(engine: veil.Engine) -> None:
    assert found(engine, "Discover 6011000000002349 0") == [("CREDIT_CARD", "6011000000002349")]


def test_a_trailing_digit_is_not_glued_to_a_grouped_card(engine: veil.Engine) -> None:
    assert found(engine, "carte 6011 0000 0000 2349 0") == [("CREDIT_CARD", "6011 0000 0000 2349")]


# --- IBAN ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "iban"),
    [
        ("IBAN FR76 3000 6000 0112 3456 7890 189.", "FR76 3000 6000 0112 3456 7890 189"),
        ("Mon IBAN est FR7630006000011234567890189, merci", "FR7630006000011234567890189"),
        ("Wire it to DE89 3704 0044 0532 0130 00 today", "DE89 3704 0044 0532 0130 00"),
        ("account GB82 WEST 1234 5698 7654 32", "GB82 WEST 1234 5698 7654 32"),
        ("compte GB82WEST12345698765432 merci", "GB82WEST12345698765432"),
        ("Virement sur BE68 5390 0754 7034", "BE68 5390 0754 7034"),
    ],
)
def test_valid_iban_is_found_with_its_exact_span(engine: veil.Engine, text: str, iban: str) -> None:
    assert found(engine, text) == [("IBAN", iban)]


def test_iban_ends_at_its_country_length_not_at_the_next_word(engine: veil.Engine) -> None:
    text = "IBAN DE89 3704 0044 0532 0130 00 1234 merci"
    assert ("IBAN", "DE89 3704 0044 0532 0130 00") in found(engine, text)


def test_iban_that_goes_on_past_its_country_length_is_not_an_iban(engine: veil.Engine) -> None:
    assert [e for e, _ in found(engine, "IBAN FR7630006000011234567890189X") if e == "IBAN"] == []


@pytest.mark.parametrize(
    ("text", "iban"),
    [
        ("IBAN FR76 3000 6000 0112 3456 7890 188", "FR76 3000 6000 0112 3456 7890 188"),
        ("iban GB82WEST12345698765433", "GB82WEST12345698765433"),
    ],
)
def test_iban_failing_mod_97_is_low_score_in_strict_and_absent_in_permissive(
    strict: veil.Engine, permissive: veil.Engine, text: str, iban: str
) -> None:
    assert_low_score_in_strict_and_absent_in_permissive(strict, permissive, text, "IBAN", iban)


@pytest.mark.parametrize(
    "text", ["the word IBAN alone", "Mon IBAN est à jour.", "Please send your IBAN and BIC", "IBAN: XX"]
)
def test_the_word_iban_alone_is_not_an_entity(engine: veil.Engine, text: str) -> None:
    assert found(engine, text) == []


def test_lower_case_iban_is_found(engine: veil.Engine) -> None:
    text = "iban fr76 3000 6000 0112 3456 7890 189"
    assert found(engine, text) == [("IBAN", "fr76 3000 6000 0112 3456 7890 189")]


def test_iban_grouped_with_dashes_is_found(engine: veil.Engine) -> None:
    text = "IBAN: FR76-3000-6000-0112-3456-7890-189"
    assert found(engine, text) == [("IBAN", "FR76-3000-6000-0112-3456-7890-189")]


def test_iban_with_a_space_after_the_country_code_is_found(engine: veil.Engine) -> None:
    text = "IBAN ES 58 0049 0290 3424 1352 8341"
    assert found(engine, text) == [("IBAN", "ES 58 0049 0290 3424 1352 8341")]


# --- BANK_ACCOUNT ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "account"),
    [
        ("Dépôt direct : transit 12345-003-1234567", "12345-003-1234567"),
        ("numéro de compte 12345 003 1234567", "12345 003 1234567"),
        ("My bank account is 12345-003-123456789012.", "12345-003-123456789012"),
    ],
)
def test_canadian_bank_account_with_context_is_found(engine: veil.Engine, text: str, account: str) -> None:
    assert found(engine, text) == [("BANK_ACCOUNT", account)]


def test_canadian_bank_account_without_context_is_reported_in_strict_mode_only(
    strict: veil.Engine, permissive: veil.Engine
) -> None:
    text = "ref 12345-003-1234567"
    assert found(strict, text) == [("BANK_ACCOUNT", "12345-003-1234567")]
    assert found(permissive, text) == []
