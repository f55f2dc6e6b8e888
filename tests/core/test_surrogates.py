"""Surrogates: realistic, unique, from reserved ranges; restored in text and streams."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veil import Engine, Policy
from veil.detect.rules.checksums import luhn_valid
from veil.detect.rules.finance import card_is_valid, iban_is_valid
from veil.session import Veil
from veil.surrogates import GENERATORS, SurrogateRestorer, SurrogateStreamingRestorer, make_surrogate


@pytest.mark.parametrize("entity", sorted(GENERATORS))
def test_surrogates_are_unique_per_number(entity: str) -> None:
    values = [make_surrogate(entity, n) for n in range(1, 3001)]
    assert len(set(values)) == len(values)


def test_identifier_surrogates_pass_their_checksums_but_come_from_reserved_ranges() -> None:
    for n in (1, 7, 999):
        assert luhn_valid(make_surrogate("CA_SIN", n))
        assert make_surrogate("CA_SIN", n).startswith("0")  # never issued
        card = make_surrogate("CREDIT_CARD", n)
        assert luhn_valid(card)
        assert not card_is_valid(card)  # outside every issuer range
        assert iban_is_valid(make_surrogate("IBAN", n))
        assert make_surrogate("EMAIL", n).endswith("@example.com")
        assert "555-01" in make_surrogate("PHONE", n)
        assert make_surrogate("IP_ADDRESS", n).startswith(("192.0.2.", "198.51.100.", "203.0.113.", "2001:db8:"))


def test_surrogate_sins_and_cards_are_not_taken_for_real_ones_in_permissive_mode() -> None:
    engine = Engine(Policy(mode="permissive"))
    text = f"my number {make_surrogate('CA_SIN', 3)}, and {make_surrogate('CREDIT_CARD', 3)}"
    assert not [s for s in engine.detect(text) if s.entity in {"CA_SIN", "CREDIT_CARD"}]


def test_entities_without_a_generator_keep_a_token() -> None:
    assert make_surrogate("FR_NIR", 2) == "{{FR_NIR_2}}"


def test_restore_finds_surrogates_in_possessives_plurals_and_name_parts() -> None:
    restorer = SurrogateRestorer({"Chloé Gagnon": "Jean Roy", "chloe.gagnon1@example.com": "jean@x.ca"})
    text, count = restorer.restore(
        "Chloé Gagnon's file: the Gagnons wrote from chloe.gagnon1@example.com; Chloé agreed."
    )
    assert text == "Jean Roy's file: the Roys wrote from jean@x.ca; Jean agreed."
    assert count == 4
    assert restorer.restore("MacGagnon and Gagnonville")[0] == "MacGagnon and Gagnonville"


def test_a_surrogate_session_round_trips_texts_and_streams() -> None:
    veil = Veil(style="surrogate")
    session = veil.session("c")
    text = "Écrivez à jean.roy@exemple.ca, tél (514) 555-0199, NAS 130 692 544, NIR 1 93 02 35 486 714 41"
    sent = session.anonymize(text).text
    assert "jean.roy" not in sent
    assert "@example.com" in sent
    assert "{{FR_NIR_1}}" in sent
    assert session.restore(sent) == text
    stream = session.stream_restorer()
    out = "".join(stream.feed(sent[i : i + 3]) for i in range(0, len(sent), 3)) + stream.flush()
    assert out == text


NAMES = {"Chloé Gagnon": "Jean Roy", "Jean Gagnon": "Ann Lee", "chloe.gagnon1@example.com": "jean@x.ca"}
PIECES = st.sampled_from([*NAMES, "Gagnon", "Gagnons", "Chloé", "'s", "x", " ", ".", "Gagnonx", "é", "\n", "Jean"])


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=20).map("".join), st.data())
def test_surrogate_streaming_equals_unary_for_any_chunking(text: str, data: st.DataObject) -> None:
    restorer = SurrogateRestorer(NAMES)
    expected = restorer.restore(text)[0]
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=12)))
    bounds = [0, *[c for c in cuts if 0 < c < len(text)], len(text)]
    stream = SurrogateStreamingRestorer(restorer)
    shown = ""
    for start, end in itertools.pairwise(bounds):
        shown += stream.feed(text[start:end])
        assert expected.startswith(shown)
    assert shown + stream.flush() == expected
