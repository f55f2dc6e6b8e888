"""Fusion of NER spans with rule spans (veil.detect.fusion), on hand-made model output.

These tests give `fuse` the spans a model could return, so each behaviour is pinned without
depending on what a particular spaCy release happens to find; test_ner_spacy.py runs the real
models end to end.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veil.detect.fusion import fuse
from veil.entities import Entity, Language, Span

COMMON = {"en": {"please", "thanks", "hello", "rose", "pouvez"}, "fr": {"pouvez", "virez", "bonjour", "pierre"}}


def common(word: str, language: Language) -> bool:
    return word in COMMON[language]


def ner(text: str, value: str, entity: str = Entity.PERSON, score: float = 0.8, nth: int = 0) -> Span:
    start = -1
    for _ in range(nth + 1):
        start = text.index(value, start + 1)
    return Span(start, start + len(value), entity, score, "spacy")


def rule(text: str, value: str, entity: str, score: float = 0.95) -> Span:
    start = text.index(value)
    return Span(start, start + len(value), entity, score, "rules")


def fused(text: str, rules: list[Span], found: list[Span], *, language: Language = "en", mode: str = "strict"):
    spans = fuse(text, rules, found, language=language, mode=mode, common_word=common)
    return sorted((s.entity, text[s.start : s.end]) for s in spans)


def test_the_user_part_of_an_email_is_not_a_person() -> None:
    text = "Write to jean.tremblay@exemple.ca today"
    email = rule(text, "jean.tremblay@exemple.ca", Entity.EMAIL)
    assert fused(text, [email], [ner(text, "jean.tremblay")]) == [("EMAIL", "jean.tremblay@exemple.ca")]


def test_a_street_name_inside_an_address_is_not_a_person() -> None:
    text = "Livrez au 1234, rue Sainte-Catherine Ouest demain."
    address = rule(text, "1234, rue Sainte-Catherine Ouest", Entity.ADDRESS)
    assert fused(text, [address], [ner(text, "Sainte-Catherine Ouest")], language="fr") == [
        ("ADDRESS", "1234, rue Sainte-Catherine Ouest")
    ]


def test_identifier_labels_the_model_calls_organisations_are_dropped() -> None:
    text = "Chris Curtis, SIN 739-490-571."
    spans = [ner(text, "Chris Curtis"), ner(text, "SIN", Entity.ORGANIZATION)]
    assert fused(text, [rule(text, "739-490-571", Entity.CA_SIN)], spans) == [
        ("CA_SIN", "739-490-571"),
        ("PERSON", "Chris Curtis"),
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Please update the file for Tiffany Becker, born 1980-02-03.", "Tiffany Becker"),
        ("Hello, this is Janice Brewer from the billing team.", "Janice Brewer"),
        ("Mon médecin est Florence-Paulette Lavoie.", "Florence-Paulette Lavoie"),
        ("Le dossier de Lucy-Valérie Germain est incomplet.", "Lucy-Valérie Germain"),
    ],
)
def test_a_full_name_typed_organisation_or_place_is_a_person_when_a_person_cue_surrounds_it(
    text: str, value: str
) -> None:
    for entity in (Entity.ORGANIZATION, Entity.LOCATION):
        assert fused(text, [], [ner(text, value, entity)], language="fr") == [("PERSON", value)]


def test_organisations_keep_their_type_when_they_say_what_they_are() -> None:
    text = "Please update the file for Banque Laurentienne Inc, today."
    assert fused(text, [], [ner(text, "Banque Laurentienne Inc", Entity.ORGANIZATION)]) == [
        ("ORGANIZATION", "Banque Laurentienne Inc")
    ]


def test_a_full_name_without_a_cue_keeps_the_models_type() -> None:
    text = "We met at Tiffany Becker yesterday."
    assert fused(text, [], [ner(text, "Tiffany Becker", Entity.ORGANIZATION)]) == [("ORGANIZATION", "Tiffany Becker")]


@pytest.mark.parametrize(
    ("text", "found", "whole"),
    [
        ("Please call Ms. Heather Patterson MD before noon.", "Heather Patterson", "Ms. Heather Patterson MD"),
        ("Update the file for Robert Jones Jr. today.", "Robert Jones", "Robert Jones Jr."),
        ("Contactez Mme Gagnon demain.", "Gagnon", "Mme Gagnon"),
        ("The doctor is Jean Tremblay, not me.", "Jean", "Jean Tremblay"),
        ("Mon médecin est Antoine Cloutier-Goulet.", "Antoine Cloutier", "Antoine Cloutier-Goulet"),
    ],
)
def test_a_person_grows_to_the_whole_name_with_its_title_and_suffix(text: str, found: str, whole: str) -> None:
    assert fused(text, [], [ner(text, found)], language="fr") == [("PERSON", whole)]


def test_a_person_does_not_grow_over_a_common_word_or_a_rule_span() -> None:
    text = "Merci Jean Bonjour. Sent by Paul +1 514 872 3456."
    phone = rule(text, "+1 514 872 3456", Entity.PHONE)
    spans = fuse(
        text, [phone], [ner(text, "Jean"), ner(text, "Paul")], language="fr", mode="strict", common_word=common
    )
    assert sorted(text[s.start : s.end] for s in spans) == ["+1 514 872 3456", "Jean", "Paul"]


def test_trailing_punctuation_and_quotes_are_trimmed_but_an_initial_keeps_its_dot() -> None:
    text = 'Signed: "Marie Tremblay," and John F. again'
    spans = [Span(text.index('"Marie'), text.index(",") + 1, Entity.PERSON, 0.8, "spacy"), ner(text, "John F.")]
    assert fused(text, [], spans) == [("PERSON", "John F."), ("PERSON", "Marie Tremblay")]


@pytest.mark.parametrize("mode", ["strict", "permissive"])
def test_a_common_word_starting_a_sentence_is_never_a_person(mode: str) -> None:
    text = "Merci. Pouvez-vous vérifier? Virez le solde. Bonjour, ici Pierre."
    spans = [ner(text, "Pouvez"), ner(text, "Virez"), ner(text, "Bonjour")]
    assert fused(text, [], spans, language="fr", mode=mode) == []


def test_a_one_word_common_name_is_dropped_in_permissive_mode_and_weak_in_strict_mode() -> None:
    text = "Ask Rose about it."
    strict = fuse(text, [], [ner(text, "Rose")], language="en", mode="strict", common_word=common)
    assert [(s.entity, s.score) for s in strict] == [("PERSON", pytest.approx(0.3))]
    assert fused(text, [], [ner(text, "Rose")], mode="permissive") == []


def test_a_one_word_name_that_is_not_a_common_word_stays_a_person_in_both_modes() -> None:
    text = "Ask Gagnon about it."
    for mode in ("strict", "permissive"):
        assert fused(text, [], [ner(text, "Gagnon")], mode=mode) == [("PERSON", "Gagnon")]


def test_a_lower_case_guess_is_weak_in_strict_mode_and_dropped_in_permissive_mode() -> None:
    text = "ask jean about it"
    assert [s.score for s in fuse(text, [], [ner(text, "jean")], language="fr", mode="strict", common_word=common)] == [
        pytest.approx(0.3)
    ]
    assert fused(text, [], [ner(text, "jean")], mode="permissive") == []


def test_names_with_digits_or_addresses_are_never_persons() -> None:
    text = "Ref GAUM 0559 and kthibault@example.net and https://lefebvre.org/main"
    spans = [ner(text, "GAUM 0559"), ner(text, "kthibault@example.net"), ner(text, "https://lefebvre.org/main")]
    assert fused(text, [], spans) == []


@pytest.mark.parametrize(
    ("text", "language", "name"),
    [
        ("Mon médecin est Dr Sébastien Poirier, à Montréal.", "fr", "Dr Sébastien Poirier"),
        ("Please call Mrs. Hayley Dunn tomorrow.", "en", "Mrs. Hayley Dunn"),
        ("Je suis allé voir Me Tremblay hier.", "fr", "Me Tremblay"),
    ],
)
def test_a_title_and_capitalised_words_make_a_person_the_model_missed(text: str, language: Language, name: str) -> None:
    assert ("PERSON", name) in fused(text, [], [], language=language)


def test_me_is_not_a_title_in_english() -> None:
    assert fused("Give Me Liberty", [], [], language="en") == []


@pytest.mark.parametrize(
    ("text", "street", "whole"),
    [
        (
            "I live at 42 Maple Ave, Apt 5, Springfield, Illinois 62704.",
            "42 Maple Ave, Apt 5",
            "42 Maple Ave, Apt 5, Springfield, Illinois 62704",
        ),
        (
            "Je demeure au 1234, rue Sainte-Catherine Ouest, à Montréal, Québec H3B 1A7.",
            "1234, rue Sainte-Catherine Ouest",
            "1234, rue Sainte-Catherine Ouest, à Montréal, Québec H3B 1A7",
        ),
    ],
)
def test_a_street_address_is_completed_through_city_province_and_postal_code(
    text: str, street: str, whole: str
) -> None:
    address = rule(text, street, Entity.ADDRESS)
    places = [ner(text, place, Entity.LOCATION) for place in ("Springfield", "Illinois", "Montréal") if place in text]
    spans = fuse(text, [address], places, language="en", mode="strict", common_word=common)
    addresses = [text[s.start : s.end] for s in spans if s.entity == Entity.ADDRESS]
    assert addresses == [whole]


def test_an_address_is_not_extended_over_an_unrelated_sentence() -> None:
    text = "Ship to 10 Downing Street. Paris is lovely."
    address = rule(text, "10 Downing Street", Entity.ADDRESS)
    spans = fuse(
        text, [address], [ner(text, "Paris", Entity.LOCATION)], language="en", mode="strict", common_word=common
    )
    assert ("ADDRESS", "10 Downing Street") in [(s.entity, text[s.start : s.end]) for s in spans]


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet="Ab Cd.,-Mr @é\n", min_size=1, max_size=60),
    cuts=st.lists(
        st.tuples(st.integers(0, 60), st.integers(1, 12), st.sampled_from(["PERSON", "LOCATION", "ORGANIZATION"]))
    ),
)
def test_fused_spans_stay_inside_the_text_and_never_overlap_a_rule_span(text: str, cuts: list) -> None:
    length = len(text)
    found = [
        Span(min(s, length - 1), min(s + w, length), e, 0.8, "spacy")
        for s, w, e in cuts
        if min(s, length - 1) < min(s + w, length)
    ]
    blocker = Span(0, min(3, length), Entity.EMAIL, 0.95, "rules")
    for mode in ("strict", "permissive"):
        for span in fuse(text, [blocker], found, language="en", mode=mode, common_word=common):
            assert 0 <= span.start < span.end <= length
            if span is not blocker and span.entity != Entity.ADDRESS:
                assert not span.overlaps(blocker)


def test_only_sentences_that_could_hold_a_name_are_read_by_the_model_in_permissive_mode() -> None:
    from veil.detect.fusion import name_bearing_runs

    text = (
        "Pouvez-vous vérifier? Virez le solde. Le dossier de Céline Trudel est prêt.\nmerci!\nAppelez Marie au bureau."
    )
    runs = name_bearing_runs(text, [(0, len(text), "fr")], common)
    assert text[runs[0][0] : runs[0][1]].startswith("Pouvez-vous")  # "pouvez-vous" is no lexicon word
    read = " ".join(text[s:e] for s, e, _ in runs)
    assert "Céline Trudel" in read and "Appelez Marie" in read
    assert "Virez le solde" not in read and "merci" not in read


def test_a_sentence_ends_at_a_dot_followed_by_a_blank_not_inside_an_address() -> None:
    from veil.detect.fusion import name_bearing_runs

    text = "bonjour, ici Stéphane Thibault; écrivez à laurence@example.net ou appelez."
    assert name_bearing_runs(text, [(0, len(text), "fr")], common) == [(0, len(text), "fr")]


def test_an_address_is_never_completed_into_the_identifier_that_follows_it() -> None:
    # Regression (found by the round-trip property): a model's LOCATION "FR76" carried the address
    # into the IBAN, the IBAN won the overlap and the whole address went out in clear.
    text = "42 Maple Ave, Apt 5, Toronto, ON M5V 2T6 FR76 3000 6000 0112 3456 7890 189 Bonjour"
    address = rule(text, "42 Maple Ave, Apt 5, Toronto, ON M5V 2T6", Entity.ADDRESS)
    iban = rule(text, "FR76 3000 6000 0112 3456 7890 189", Entity.IBAN)
    spans = fuse(
        text, [address, iban], [ner(text, "FR76", Entity.LOCATION)], language="fr", mode="strict", common_word=common
    )
    assert sorted((s.entity, text[s.start : s.end]) for s in spans) == [
        ("ADDRESS", "42 Maple Ave, Apt 5, Toronto, ON M5V 2T6"),
        ("IBAN", "FR76 3000 6000 0112 3456 7890 189"),
    ]


def test_in_strict_mode_lower_case_sentences_and_unknown_words_are_read_too() -> None:
    from veil.detect.fusion import name_bearing_runs

    known = {"please", "call", "tomorrow", "the", "order", "desk", "is", "my", "name"}

    def known_word(word: str, language: Language) -> bool:
        return word in known or common(word, language)

    def read(text: str) -> str:
        return " ".join(text[s:e] for s, e, _ in name_bearing_runs(text, [(0, len(text), "en")], common, known_word))

    assert read("my name is jean tremblay.") == "my name is jean tremblay."  # no capitals: no clue
    assert read("Please call tremblay tomorrow.") == "Please call tremblay tomorrow."  # unknown word
    assert read("Please call the order desk 514 872 3456.").strip() == ""  # every word known or a number
    assert read("Please call jo@x.ca tomorrow.").strip() == ""  # an e-mail is the rules' business


def test_a_place_the_model_read_with_its_zip_code_keeps_the_words_and_the_address_takes_both() -> None:
    text = "He moved to 42 Maple Ave, Apt 5, Springfield, Illinois 62704."
    address = rule(text, "42 Maple Ave, Apt 5", Entity.ADDRESS)
    places = [ner(text, "Springfield", Entity.LOCATION), ner(text, "Illinois 62704", Entity.LOCATION)]
    spans = fuse(text, [address], places, language="en", mode="strict", common_word=common)
    assert [text[s.start : s.end] for s in spans if s.entity == Entity.ADDRESS] == [
        "42 Maple Ave, Apt 5, Springfield, Illinois 62704"
    ]
    assert "Illinois" in [text[s.start : s.end] for s in spans if s.entity == Entity.LOCATION]


def test_a_titled_name_inside_a_longer_span_the_model_found_is_not_reported_twice() -> None:
    # Regression: only the span starting last before the title was checked; a shorter one
    # ("Santé") hid the longer one that covers the title.
    text = "Contactez le Groupe Santé Dr Gagnon inc. demain, et Me Roy."
    org = ner(text, "Groupe Santé Dr Gagnon inc", Entity.ORGANIZATION)
    inner = ner(text, "Santé", Entity.LOCATION)
    spans = fused(text, [], [org, inner], language="fr")
    assert ("PERSON", "Dr Gagnon") not in spans
    assert ("PERSON", "Me Roy") in spans


@pytest.mark.parametrize(
    ("text", "value", "rule_value", "entity", "expected"),
    [
        # Regression: a name whose span ran into a rule span was dropped whole, and sent as written.
        ("Call Jean Tremblay 514 555 0199 today.", "Jean Tremblay 514", "514 555 0199", Entity.PHONE, "Jean Tremblay"),
        ("Email: jo@x.ca Marie Lavoie wrote", "jo@x.ca Marie Lavoie", "jo@x.ca", Entity.EMAIL, "Marie Lavoie"),
    ],
)
def test_the_words_of_a_name_outside_a_rule_span_are_kept(
    text: str, value: str, rule_value: str, entity: str, expected: str
) -> None:
    spans = fused(text, [rule(text, rule_value, entity)], [ner(text, value)])
    assert ("PERSON", expected) in spans
    assert (entity, rule_value) in spans


def test_a_piece_cut_inside_a_word_by_a_rule_span_is_not_a_name() -> None:
    text = "Ref AB12CD Tremblay"
    spans = fused(text, [rule(text, "AB12C", Entity.SECRET)], [ner(text, "AB12CD")])
    assert spans == [("SECRET", "AB12C")]


def test_an_address_unit_word_read_apart_from_its_address_is_not_a_name() -> None:
    text = "55 Halsey Road\nSuite 881\nHayborough"
    found = [ner(text, "Halsey Road\nSuite", Entity.LOCATION), ner(text, "Suite", Entity.PERSON)]
    spans = fused(text, [rule(text, "55 Halsey Road", Entity.ADDRESS)], found)
    assert not any(value == "Suite" for _, value in spans)


def test_each_of_many_addresses_in_one_text_completes_through_its_own_place_and_postal_code() -> None:
    # The places, postal codes and other rule spans are indexed once per text (a long document with
    # hundreds of addresses once rebuilt them for every address); each address must still find its own.
    rules: list[Span] = []
    places: list[Span] = []
    wholes: list[str] = []
    parts: list[str] = []
    offset = 0
    for number in range(1, 41):
        street, city = f"{number} Maple Ave", f"Springfield{'ville' * (number % 3)}"
        postal = "M5V 2T6"
        block = f"Client {number} lives at {street}, {city}, ON {postal}. Call 514-555-01{number:02d}. "
        base = offset + len(f"Client {number} lives at ")
        rules.append(Span(base, base + len(street), Entity.ADDRESS, 0.9, "rules"))
        city_at = offset + block.index(city)
        places.append(Span(city_at, city_at + len(city), Entity.LOCATION, 0.8, "spacy"))
        postal_at = offset + block.index(postal)
        rules.append(Span(postal_at, postal_at + len(postal), Entity.CA_POSTAL_CODE, 0.9, "rules"))
        phone_at = offset + block.index("514-")
        rules.append(Span(phone_at, phone_at + len("514-555-0100"), Entity.PHONE, 0.9, "rules"))
        wholes.append(f"{street}, {city}, ON {postal}")
        parts.append(block)
        offset += len(block)
    text = "".join(parts)
    spans = fuse(text, rules, places, language="en", mode="strict", common_word=common)
    assert sorted((s.start, text[s.start : s.end]) for s in spans if s.entity == Entity.ADDRESS) == sorted(
        (text.index(whole), whole) for whole in wholes
    )
