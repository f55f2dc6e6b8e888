"""The rules engine's shortcuts change its cost, never its answers.

Each shortcut is checked against the slow way it replaces: the scanner's second-character
look-ahead against every rule's own matches, phone chunks skipped inside identifiers against
what the engine reports, context words against a plain case-insensitive search, prechecks
against texts that need the rule, the fast Luhn and SIN check against python-stdnum's.
"""

from __future__ import annotations

import dataclasses
import random
import re

import pytest
from stdnum import luhn as stdnum_luhn
from stdnum.ca import sin as stdnum_sin
from stdnum.eu import vat as stdnum_vat
from stdnum.nl import bsn as stdnum_bsn

import veil
from veil.detect import BUILTIN_RULES, Rule, RuleDetector, regex_ast
from veil.detect.context import ContextWords
from veil.detect.rules.canada import CA_SIN, sin_is_valid
from veil.detect.rules.checksums import alnum_upper, digits_of, luhn_valid
from veil.detect.rules.contact import _extend_back_over_local_part
from veil.detect.rules.europe import _VAT_PREFIXES, EU_VAT, NL_BSN, bsn_is_valid, vat_is_valid
from veil.entities import Span, unchecked_span

CA_SIN_REGEX = re.compile(CA_SIN.pattern)
NL_BSN_REGEX = re.compile(NL_BSN.pattern)
EU_VAT_REGEX = re.compile(EU_VAT.pattern)

ENGINE = veil.Engine(detectors=[RuleDetector(BUILTIN_RULES)])
DETECTOR = RuleDetector(BUILTIN_RULES)


def _spans(text: str) -> list[tuple[str, str]]:
    return [(s.entity, text[s.start : s.end]) for s in ENGINE.detect(text, "en")]


# --- the scanner's look-ahead on second characters ---------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("[A-Z]{2}[0-9]", set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")), ("X(?:1|b)c", {"1", "b"}), ("ab?c", {"b", "c"})],
)
def test_second_characters_of_simple_patterns(pattern: str, expected: set[str]) -> None:
    assert regex_ast.second_characters(pattern) == expected


@pytest.mark.parametrize("pattern", ["a?b", "a*", "(?i:ab)", "a.c", "a[^b]"])
def test_second_characters_refuses_what_it_cannot_tell(pattern: str) -> None:
    assert regex_ast.second_characters(pattern) is None


ANALYSED = [r for r in BUILTIN_RULES if r.examples and regex_ast.second_characters(r.pattern, r.flags) is not None]


def test_the_second_character_analysis_reads_most_built_in_rules() -> None:
    assert len(ANALYSED) >= 25


@pytest.mark.parametrize("rule", ANALYSED, ids=lambda r: r.name)
def test_every_example_of_a_rule_has_a_second_character_its_analysis_allows(rule: Rule) -> None:
    second = regex_ast.second_characters(rule.pattern, rule.flags)
    assert second is not None
    for example in rule.examples:
        for match in re.finditer(rule.pattern, example, rule.flags):
            assert example[match.start() + 1] in second


# --- phone chunks inside identifiers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("Mon IBAN est FR76 3000 6000 0112 3456 7890 189.", "IBAN"),
        ("Please charge my card 4111 1111 1111 1111 today.", "CREDIT_CARD"),
    ],
)
def test_no_phone_candidate_is_read_strictly_inside_an_identifier(text: str, entity: str) -> None:
    candidates = DETECTOR.detect(text, "en")
    (outer,) = [s for s in candidates if s.entity == entity and s.score >= 0.5]
    inside = [s for s in candidates if s.entity == "PHONE" and outer.start <= s.start and s.end <= outer.end]
    assert all((s.start, s.end) == (outer.start, outer.end) for s in inside)
    assert [e for e, _ in _spans(text)] == [entity]


def test_a_phone_read_inside_a_card_from_the_card_start_is_dropped_by_the_engine() -> None:
    # Refining the phone candidate that spans the whole card would find the chunk "0183 3801 473";
    # the detector skips it (PHONE's `pieces_only`), as the engine would drop it as a part of the card.
    text = "Veuillez porter le renouvellement à ma carte 3720 0183 3801 473, merci."
    assert _spans(text) == [("CREDIT_CARD", "3720 0183 3801 473")]
    assert [s.entity for s in DETECTOR.detect(text, "fr")] == ["CREDIT_CARD"]


_WITHOUT_PIECES_HINT = RuleDetector([dataclasses.replace(rule, pieces_only=None) for rule in BUILTIN_RULES])
_PIECES = ("4111 1111 1111 1111", "3720 0183 3801 473", "5393 0162 2487 2614", "0162 2487 2614", "(514) 555-0199",
           "+33 1 42 68 53 00", "1 93 02 35 486 714 41", "130 692 544", "514-555-0199", "12", "-", ".", "(", ")",
           "\u00a0", " ", ", ", "card", "tel", "FR76 3000 6000 0112 3456 7890 189", "192.168.10.20", "x")  # fmt: skip


_POLICIES = [
    veil.Policy(ner="off"),
    veil.Policy(ner="off", entities=frozenset({"PHONE"})),
    veil.Policy(ner="off", mode="permissive", exclude=frozenset({"CREDIT_CARD"})),
]


@pytest.mark.parametrize("policy", _POLICIES)
def test_skipping_a_phone_that_coincides_with_an_identifier_never_changes_what_the_engine_reports(
    policy: veil.Policy,
) -> None:
    fast, slow = veil.Engine(policy, detectors=[DETECTOR]), veil.Engine(policy, detectors=[_WITHOUT_PIECES_HINT])
    rng = random.Random(18)
    for _ in range(1500):
        text = "".join(rng.choice(_PIECES) + rng.choice(("", " ")) for _ in range(rng.randint(1, 8)))
        assert fast.detect(text, "fr") == slow.detect(text, "fr")


def test_a_phone_next_to_an_identifier_is_still_found() -> None:
    text = "Card 4111 1111 1111 1111, or call me at +1 514 872 3456."
    assert _spans(text) == [("CREDIT_CARD", "4111 1111 1111 1111"), ("PHONE", "+1 514 872 3456")]


# --- context words ----------------------------------------------------------------------------------


WORDS = ["SIN", "numéro d'assurance sociale", "né le", "carte", "crédit", "d.o.b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("My SIN is 130 692 544", True),
        ("my sin is 130 692 544", True),
        ("SINGLE 130 692 544", False),
        ("Mon NUMERO D'ASSURANCE-SOCIALE: 130 692 544", True),
        ("Mon numero d'assurance sociale: 130 692 544", True),
        ("ne le 130 692 544", False),  # accents carry the meaning in short words
        ("NÉ LE 130 692 544", True),
        ("ma carte de crédit 130 692 544", True),
        ("la cartel 130 692 544", False),
        ("d.o.b. 130 692 544", True),
    ],
)
def test_context_words_are_whole_words_case_and_accent_insensitive(text: str, expected: bool) -> None:
    start = text.index("130")
    assert ContextWords(WORDS).near(text, start, start + 11) is expected


def test_context_words_agree_with_a_plain_search_on_generated_sentences() -> None:
    words = ContextWords(["SIN", "carte", "crédit"])
    # The reference: an IGNORECASE alternation; the accent is optional in "crédit" (4+ letters).
    reference = re.compile(r"(?<!\w)(?:sin|carte|cr[ée]dit)(?!\w)", re.IGNORECASE)
    vocabulary = ["my", "the", "SIN", "sin", "sinus", "asin", "carte", "CARTE", "cartes", "crédit", "CRÉDIT",
                  "credit", "crédits", "né", "le", "-", "_sin"]  # fmt: skip
    rng = random.Random(7)
    for _ in range(2000):
        text = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 12))) + " 130 692 544"
        start = text.index("130 692")
        window = text[max(0, start - words.before) : start]
        expected = reference.search(text, max(0, start - words.before), start) is not None
        assert words.near(text, start, start + 11) is expected, window


# --- prechecks ------------------------------------------------------------------------------------


def test_lower_case_iban_and_postal_code_are_still_found() -> None:
    text = "virement vers fr76 3000 6000 0112 3456 7890 189, code postal h2x 1y4"
    assert _spans(text) == [("IBAN", "fr76 3000 6000 0112 3456 7890 189"), ("CA_POSTAL_CODE", "h2x 1y4")]


def test_ipv6_is_found_and_a_clock_time_is_not_an_address() -> None:
    assert _spans("server fe80::1ff:fe23:4567:890a is down") == [("IP_ADDRESS", "fe80::1ff:fe23:4567:890a")]
    assert _spans("The meeting moved to 10:30 on Tuesday") == []


# --- Luhn --------------------------------------------------------------------------------------------


def test_luhn_agrees_with_stdnum_on_random_numbers() -> None:
    rng = random.Random(11)
    for _ in range(5000):
        number = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 20)))
        written = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
        assert luhn_valid(written) is stdnum_luhn.is_valid(number)
        assert digits_of(written) == number


def test_digits_of_agrees_with_a_plain_filter_on_random_written_numbers() -> None:
    rng = random.Random(12)
    for _ in range(5000):
        written = "".join(rng.choice("0123456789 -.()+/٣\u00a0x") for _ in range(rng.randint(0, 20)))
        assert digits_of(written) == "".join(ch for ch in written if ch in "0123456789")


# --- the SIN's check ---------------------------------------------------------------------------------


def test_sin_check_agrees_with_stdnum_on_every_written_form_the_rule_matches() -> None:
    rng = random.Random(13)
    for _ in range(5000):
        number = "".join(rng.choice("0123456789") for _ in range(9))
        for written in (number, f"{number[:3]} {number[3:6]} {number[6:]}", f"{number[:3]}-{number[3:6]}-{number[6:]}"):
            assert CA_SIN_REGEX.fullmatch(written)
            assert sin_is_valid(written) is stdnum_sin.is_valid(written)


def test_bsn_check_agrees_with_stdnum_on_every_written_form_the_rule_matches() -> None:
    rng = random.Random(16)
    for index in range(5000):
        number = "000000000" if index == 0 else "".join(rng.choice("0123456789") for _ in range(9))
        for written in (number, f"{number[:4]}.{number[4:6]}.{number[6:]}", f"{number[:4]}.{number[4:]}"):
            assert NL_BSN_REGEX.fullmatch(written)
            assert bsn_is_valid(written) is stdnum_bsn.is_valid(written)


# Valid VAT numbers of each member state, from python-stdnum's tests (tests/test_eu_vat.doctest).
_VALID_VAT = (
    "ATU 142 43 102", "BE 0202.239.951", "BG 103873594", "CY 10246672X", "CZ 25123891", "DE 118619592",
    "DK 10 50 32 80", "EE 100 931 558", "ES 54362315K", "EL 039868210", "FI 02459042", "FR 04409414364",
    "HU 10672101", "IE 0005306C", "IT 0 0 6 1 8 2 8 0 4 9 9", "LT 100001354118", "LU 10059929",
    "LV 4000 3521 600", "MT 1465 8213", "NL 001241 643 B01", "PL 5211355116", "PT 500 019 720",
    "RO 11358544", "SE 390 806 051 401", "SI 26808498", "SK 1078449064", "XI 432525179",
)  # fmt: skip


def test_vat_check_agrees_with_stdnum_on_matches_of_the_rule() -> None:
    rng = random.Random(17)
    values = list(_VALID_VAT)
    for valid in _VALID_VAT:  # one character changed: mostly invalid, sometimes another country's form
        for _ in range(20):
            position = rng.randrange(3, len(valid))
            values.append(valid[:position] + rng.choice("0123456789AB") + valid[position + 1 :])
    for _ in range(5000):
        body = "".join(rng.choice("0123456789" * 3 + "ABX") + rng.choice(("", "", " ", ".")) for _ in range(13))
        values.append(rng.choice(_VAT_PREFIXES.split("|")) + rng.choice(("", " ")) + body[: rng.randint(8, 26)])
    checked = valid_count = 0
    for value in values:
        for match in EU_VAT_REGEX.finditer(value):
            checked += 1
            valid_count += stdnum_vat.is_valid(match.group())
            assert vat_is_valid(match.group()) is stdnum_vat.is_valid(match.group())
    assert checked > 3000 and valid_count >= len(_VALID_VAT)


# --- spans made without the public constructor's checks -------------------------------------------


def test_unchecked_spans_equal_checked_ones() -> None:
    checked = Span(3, 9, "CA_SIN", 0.9, "rules")
    unchecked = unchecked_span(3, 9, "CA_SIN", 0.9, "rules")
    assert unchecked == checked and hash(unchecked) == hash(checked) and repr(unchecked) == repr(checked)
    with pytest.raises(dataclasses.FrozenInstanceError):
        unchecked.start = 4  # type: ignore[misc]


def test_a_rule_with_a_negative_score_is_refused_when_the_detector_is_built() -> None:
    rule = Rule(name="negative", entity="X_ID", pattern="x[0-9]+", score=0.5, context=("id",), context_boost=-0.6)
    with pytest.raises(ValueError, match="at least 0"):
        RuleDetector([rule])


def test_an_empty_match_is_still_refused_by_the_span_check() -> None:
    detector = RuleDetector([Rule(name="empty", entity="X_ID", pattern="(?=x)", score=0.5, left_boundary=False)])
    with pytest.raises(ValueError, match="start < end"):
        detector.detect("x", "en")


# --- an e-mail's local part -------------------------------------------------------------------------

_LOCAL_PART = re.compile(r"[\w.%+\-]{1,64}\Z")


def test_local_part_found_backwards_is_the_one_a_search_for_it_finds() -> None:
    rng = random.Random(14)
    for _ in range(20000):
        alphabet = rng.choice(("ab._-+% é\nZ9_", "abc.", "a b"))
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 150))) + "@exemple.ca"
        start = text.rindex("@")
        local = _LOCAL_PART.search(text, max(0, start - 64), start)
        expected = None
        if local is not None:
            local_start = local.start()
            while local_start < start and text[local_start] in ".-+%":
                local_start += 1
            expected = (local_start, len(text)) if local_start < start else None
        assert _extend_back_over_local_part(text, start, len(text)) == expected


def test_alnum_upper_agrees_with_a_plain_filter() -> None:
    rng = random.Random(15)
    for _ in range(5000):
        value = "".join(rng.choice("aZ9 _-.é٣\u00a0") for _ in range(rng.randint(0, 20)))
        assert alnum_upper(value) == "".join(ch for ch in value if ch.isalnum()).upper()
