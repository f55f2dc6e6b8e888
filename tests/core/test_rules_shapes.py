"""The shape index (`veil.detect.shapes`) and the other fast paths of the rules engine change its
cost, never its answers.

- Soundness per family: at the start of every example of every rule, the rule's shadow allows
  the position's shape, and the pass tries the rule there.
- Pruning: the index does skip what cannot match (a card is not tried at "10 h 30", a date not
  at the start of a card), so that the shortcut stays a shortcut.
- Differential: the detector with the index finds exactly the candidates (bounds, entity, score)
  of the detector without it (`by_shape=False`, every rule of a pass tried at every position),
  on random texts, on texts built from the rules' own examples, and on the speed corpus.
- The checks rewritten for speed (Luhn, issuer ranges, mod 97, the IBAN's extent, the phone
  search's pre-test, prechecks over character cells) agree with the slow versions they replace.
"""

from __future__ import annotations

import random
import re
import string
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum import iban as stdnum_iban
from stdnum import luhn as stdnum_luhn

from veil.detect import BUILTIN_RULES, Rule, RuleDetector
from veil.detect.rules import contact, finance
from veil.detect.rules.checksums import alnum_upper, digits_of, iban_checksum_valid, luhn_digits_valid
from veil.detect.rules.detector import _Pass, _Precheck
from veil.detect.shapes import WIDTH, Shadow, ShapeIndex, cells_of, shadow_or_none, shape_of

FAST = RuleDetector(BUILTIN_RULES)
SLOW = RuleDetector(BUILTIN_RULES, by_shape=False)
SHARED = [scan for scan in FAST._passes if scan.single is None]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _candidates(detector: RuleDetector, text: str, language: str = "en") -> list[tuple[int, int, str, float]]:
    return sorted((s.start, s.end, s.entity, round(s.score, 9)) for s in detector.detect(text, language))  # type: ignore[arg-type]


def _pass_of(rule: Rule) -> _Pass | None:
    return next((scan for scan in SHARED if any(c.rule.name == rule.name for c in scan.rules)), None)


# --- cells and shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cells"),
    [
        ("4111 1111", b"ddddsdddd"),
        ("(514) 555-0199", b"odddcsdddhdddd"),
        ("H2X 1Y4", b"AdAsdAd"),
        ("né le 1/2.", b"axsaasdldp"),
        ("+1\u00a0514", b"qdxddd"),
        ("a?b", b"axa"),  # "?" shares the cell of the characters beyond ASCII
        ("x@y:z\t", b"azazaw"),
    ],
)
def test_each_character_gets_its_cell(text: str, cells: bytes) -> None:
    assert cells_of(text) == cells


@given(st.text(max_size=60))
def test_cells_have_one_byte_a_character_and_shapes_are_their_slices(text: str) -> None:
    cells = cells_of(text)
    assert len(cells) == len(text)
    for position in range(len(text)):
        assert shape_of(text, position) == cells[position : position + WIDTH]


# --- soundness, rule by rule ------------------------------------------------------------------------


def test_every_built_in_pattern_gate_and_precheck_has_a_shadow() -> None:
    for rule in BUILTIN_RULES:
        for pattern in (rule.pattern, rule.gate, rule.precheck):
            if pattern:
                assert shadow_or_none(pattern, rule.flags if pattern == rule.pattern else 0) is not None, rule.name


EXAMPLES = [(rule, example) for rule in BUILTIN_RULES for example in rule.examples]


@pytest.mark.parametrize(("rule", "example"), EXAMPLES, ids=lambda value: getattr(value, "name", value))
def test_the_shadow_of_a_rule_allows_every_match_of_its_examples(rule: Rule, example: str) -> None:
    shadow = Shadow(rule.pattern, rule.flags)
    gate = Shadow(rule.gate) if rule.gate else None
    text = f"ref {example} ok"
    matches = list(re.finditer(rule.pattern, text, rule.flags))
    assert matches
    for match in matches:
        shape = shape_of(text, match.start())
        assert shadow.may_start(shape), (shape, match.group())
        if gate is not None and re.match(rule.gate or "", text[match.start() :]):
            assert gate.may_start(shape)


SHARED_EXAMPLES = [(rule, example) for rule, example in EXAMPLES if _pass_of(rule) is not None]


def test_most_rules_run_in_a_shared_pass() -> None:
    assert len({rule.name for rule, _ in SHARED_EXAMPLES}) >= 20


@pytest.mark.parametrize(("rule", "example"), SHARED_EXAMPLES, ids=lambda value: getattr(value, "name", value))
def test_a_shared_pass_tries_a_rule_at_the_start_of_each_of_its_examples(rule: Rule, example: str) -> None:
    scan = _pass_of(rule)
    assert scan is not None and scan.shapes is not None
    text = f"ref {example} ok"
    slot = next(index for index, compiled in enumerate(scan.rules) if compiled.rule.name == rule.name)
    for match in re.finditer(rule.pattern, text, rule.flags):
        if rule.gate and not re.match(rule.gate, text[match.start() :]):
            continue
        assert slot in scan.shapes.rules_for(shape_of(text, match.start()))


@pytest.mark.parametrize(
    ("text", "tried", "not_tried"),
    [
        ("card 4111 1111 1111 1111", {"credit_card", "phone"}, {"date_numeric", "ipv4", "ca_sin", "address_en"}),
        ("SIN 130 692 544 ok", {"ca_sin", "phone"}, {"date_iso", "date_numeric", "ipv4", "address_en"}),
        ("born 03/07/1995 ok", {"date_numeric"}, {"credit_card", "phone", "ca_sin", "ipv4"}),
        ("at 1234, rue Sainte-Catherine", {"address_fr"}, {"address_en", "phone", "credit_card"}),
        ("at 10 h 30 today", set(), {"phone", "address_fr", "date_written_day_first", "credit_card"}),
        ("version 4.2.1 is out", set(), {"ipv4", "phone", "date_numeric_dotted", "address_en"}),
    ],
)
def test_the_index_skips_the_rules_whose_shape_cannot_start_there(
    text: str, tried: set[str], not_tried: set[str]
) -> None:
    position = next(i for i, ch in enumerate(text) if ch.isdigit())
    (scan,) = [scan for scan in SHARED if scan.scanner is not None and scan.scanner.match(text, position)]
    assert scan.shapes is not None
    names = {scan.rules[index].rule.name for index in scan.shapes.rules_for(shape_of(text, position))}
    assert tried <= names
    assert not names & not_tried


def test_a_pattern_the_analysis_cannot_read_is_tried_everywhere() -> None:
    # A conditional group is beyond the rewriting: the rule has no shadow and is always tried.
    index = ShapeIndex([(r"(a)?(?(1)b|c)[0-9]", 0, None), ("[0-9]{3}", 0, None)])
    assert index.rules_for(b"zzzz") == (0,)
    assert index.rules_for(b"ddds") == (0, 1)


# --- the detector with and without the index -----------------------------------------------------


NUMBERISH = string.digits * 4 + "  -./(),+:" + "\u00a0" + "XYZxyzABCHKTabcdehrstnoé"
WORDS = """rue Rue boulevard Maple Ave King Street West SIN NAS card carte IBAN né le born July juillet
1er 28th of de FR DE GB Apt app. Montréal (Québec) ON QC tel phone ohip RAMQ TREJ BSN dni K st nd
th e Dr Smith vat FR61 BE NL v version Order is the 4111 1111 130 692 544 514-555-0199 H2X 1Y4
1993 03/07/1995 1995-07-03 3.07.1995 192.168.10.20 FR76 3000 6000 0112 3456 7890 189""".split()

numberish_text = st.text(alphabet=NUMBERISH, max_size=80)
word_text = st.lists(st.sampled_from(WORDS), max_size=20).map(" ".join)
glued_text = st.lists(st.sampled_from(WORDS) | st.text(alphabet=NUMBERISH, max_size=6), max_size=16).map("".join)


@SETTINGS
@given(text=numberish_text | word_text | glued_text, language=st.sampled_from(["en", "fr"]))
def test_the_index_finds_exactly_what_trying_every_rule_finds(text: str, language: str) -> None:
    assert _candidates(FAST, text, language) == _candidates(SLOW, text, language)


def test_the_index_finds_exactly_what_trying_every_rule_finds_on_mixed_examples() -> None:
    rng = random.Random(17)
    examples = [example for _, example in EXAMPLES] + [text for rule in BUILTIN_RULES for text in rule.counterexamples]
    glue = [" ", ", ", "-", "", " et ", "\n", ". ", "/", " 12 ", "(", ")"]
    for _ in range(1500):
        text = "".join(rng.choice(examples) + rng.choice(glue) for _ in range(rng.randint(1, 5)))
        for language in ("en", "fr"):
            assert _candidates(FAST, text, language) == _candidates(SLOW, text, language), text


def test_the_index_finds_exactly_what_trying_every_rule_finds_on_the_speed_corpus() -> None:
    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    try:
        import detect_speed  # the benchmark's own corpus
    finally:
        sys.path.pop(0)
    chats, documents = detect_speed.corpus(23, 300, 4)
    for text, language in [*chats, *documents]:
        assert _candidates(FAST, text, language) == _candidates(SLOW, text, language)


def test_a_full_shape_memo_is_emptied_and_answers_stay_the_same() -> None:
    detector = RuleDetector(BUILTIN_RULES)
    for scan in detector._passes:
        scan.shapes_remembered = 3
    text = "card 4111 1111 1111 1111, NAS 130 692 544, (514) 555-0199, 1234, rue Sainte-Catherine, 10 h 30"
    for _ in range(3):
        assert _candidates(detector, text) == _candidates(SLOW, text)
    assert all(scan.by_shape is None or len(scan.by_shape) <= 3 for scan in detector._passes)


# --- prechecks over cells ------------------------------------------------------------------------


PRECHECKS = sorted({rule.precheck for rule in BUILTIN_RULES if rule.precheck})


@SETTINGS
@given(text=st.text(max_size=80) | numberish_text | word_text)
def test_a_precheck_over_cells_says_yes_whenever_the_pattern_is_in_the_text(text: str) -> None:
    cells = cells_of(text)
    for pattern in PRECHECKS:
        if re.search(pattern, text):
            assert _Precheck(pattern).found(text, cells), pattern


def test_lower_case_identifiers_and_nies_are_still_found_behind_their_prechecks() -> None:
    text = "virement fr76 3000 6000 0112 3456 7890 189, code postal h2x 1y4, nie x 2482300w"
    assert {s.entity for s in FAST.detect(text, "fr") if s.score >= 0.5} >= {"IBAN", "CA_POSTAL_CODE", "ES_DNI"}


# --- checks rewritten for speed --------------------------------------------------------------------


def _issuer_known_by_ranges(digits: str) -> bool:
    """The issuer check as it was written before the prefix table."""
    return any(
        len(digits) in lengths and low <= digits[: len(low)] <= high for low, high, lengths in finance._IIN_RANGES
    )


def test_luhn_and_issuer_table_agree_with_stdnum_and_the_ranges() -> None:
    rng = random.Random(3)
    for _ in range(5000):
        digits = "".join(rng.choice(string.digits) for _ in range(rng.randint(1, 20)))
        prefix = rng.choice(["", "4", "5", "22", "27", "34", "37", "6011", "65", "35", "30", "36", "62", "50", "67"])
        digits = (prefix + digits)[:20]
        assert luhn_digits_valid(digits) is stdnum_luhn.is_valid(digits)
        assert finance.card_issuer_known(digits) is _issuer_known_by_ranges(digits)


def _mod97_by_characters(compact: str) -> bool:
    """The IBAN check as it was written before `str.translate`: each character read in base 36."""
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def test_the_iban_check_agrees_with_stdnum_and_the_character_by_character_sum() -> None:
    rng = random.Random(5)
    countries = list(finance.IBAN_LENGTHS)
    for _ in range(3000):
        country = rng.choice(countries)
        length = finance.IBAN_LENGTHS[country]
        body = "".join(rng.choice(string.digits * 3 + string.ascii_uppercase) for _ in range(length - 4))
        number = f"{country}{rng.randint(0, 99):02d}{body}"
        assert iban_checksum_valid(number, length) is _mod97_by_characters(number)
    for valid in ("FR7630006000011234567890189", "DE89370400440532013000", "GB82WEST12345698765432"):
        assert iban_checksum_valid(valid, len(valid)) and stdnum_iban.is_valid(valid)


@given(st.text(max_size=40))
def test_alnum_upper_keeps_the_letters_and_digits(value: str) -> None:
    assert alnum_upper(value) == "".join(ch for ch in value if ch.isalnum()).upper()


@given(st.text(alphabet=string.digits + " -.a\u0663", max_size=30))
def test_digits_of_keeps_the_ascii_digits(value: str) -> None:
    assert digits_of(value) == "".join(ch for ch in value if ch in string.digits)


def _iban_extent_by_loop(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The IBAN refiner as it was written before the per-country patterns."""
    length = finance.IBAN_LENGTHS.get(text[start : start + 2].upper())
    if length is None:
        return None
    seen = 0
    for position in range(start, end):
        if text[position].isalnum():
            seen += 1
            if seen == length:
                stop = position + 1
                return None if stop < len(text) and text[stop].isalnum() else (start, stop)
    return None


@SETTINGS
@given(st.text(alphabet="FRDEGBfr0123456789 .-Aé", min_size=2, max_size=40), st.text(alphabet="0123 aA.", max_size=3))
def test_the_iban_extent_agrees_with_a_character_loop(body: str, tail: str) -> None:
    text = body + tail
    assert finance._refine_iban(text, 0, len(body)) == _iban_extent_by_loop(text, 0, len(body))


@SETTINGS
@given(st.text(alphabet="0123456789 ()+-.\u00a0", min_size=1, max_size=30).filter(lambda v: v[0] in "0123456789(+"))
def test_a_phone_candidate_refused_by_the_pre_test_holds_no_phone(candidate: str) -> None:
    groups = contact._PHONE_GROUP_PARTS.findall(candidate)
    if groups and not contact._may_hold_a_phone(groups, [len(digits) for _, digits in groups]):
        assert contact._longest_phone_inside(candidate, 0, len(candidate)) is None
