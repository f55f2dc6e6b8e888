"""ADDRESS: a civic number and a street type, extended over the unit, the city, the province or
state and the postal or ZIP code that follow, in Quebec French and English.

An address is one span: the postal code inside it is part of it, not a second entity.
"""

from __future__ import annotations

import pytest
from span_checks import found

import veil


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("J'habite au 1234, rue Sainte-Catherine Ouest depuis 2020.", "1234, rue Sainte-Catherine Ouest"),
        (
            "Livrez au 350, chemin du Lac-Brome, Knowlton (Québec) J0E 1V0 svp",
            "350, chemin du Lac-Brome, Knowlton (Québec) J0E 1V0",
        ),
        ("J'habite 12 av. du Parc, app. 4", "12 av. du Parc, app. 4"),
        (
            "Bureau au 1000, boul. René-Lévesque Ouest, Montréal (Québec) H3B 4W5.",
            "1000, boul. René-Lévesque Ouest, Montréal (Québec) H3B 4W5",
        ),
        ("Habite au 6865 rang des Érables", "6865 rang des Érables"),
        ("Envoyez à 42 rue de la Paix, H2X 1Y4", "42 rue de la Paix, H2X 1Y4"),
    ],
)
def test_quebec_french_address_is_one_span(engine: veil.Engine, text: str, address: str) -> None:
    assert found(engine, text) == [("ADDRESS", address)]


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("I live at 42 Maple Ave, Apt 5 now", "42 Maple Ave, Apt 5"),
        ("Ship to 77 Queen St E, Toronto, ON M5C 1R6.", "77 Queen St E, Toronto, ON M5C 1R6"),
        (
            "Our office: 100 Queen St W, Suite 200, Toronto, ON M5H 2N2",
            "100 Queen St W, Suite 200, Toronto, ON M5H 2N2",
        ),
        ("Send to 350 Fifth Avenue, New York, NY 10118", "350 Fifth Avenue, New York, NY 10118"),
        ("He lives at 221 Baker Street, London", "221 Baker Street"),
        ("Meet at 10 Main St", "10 Main St"),
    ],
)
def test_english_address_is_one_span(engine: veil.Engine, text: str, address: str) -> None:
    assert found(engine, text) == [("ADDRESS", address)]


def test_postal_code_inside_an_address_is_not_a_second_span(engine: veil.Engine) -> None:
    text = "6865, rang des Érables, Sherbrooke (Québec) J1H 8B7"
    assert [entity for entity, _ in found(engine, text)] == ["ADDRESS"]


@pytest.mark.parametrize(
    "text",
    [
        "la rue est belle",
        "3 rues plus loin",
        "J'ai 3 chats et 2 chiens",
        "rue Sainte-Catherine",
        "3 streets away",
        "We met at 5 PM Dr Smith said",
        "Room 12 Dr. Smith",
    ],
)
def test_street_words_without_a_civic_number_and_street_are_not_an_address(engine: veil.Engine, text: str) -> None:
    assert found(engine, text) == []


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("Apt 5 1234 Maple Ave", "1234 Maple Ave"),
        ("unité 1 1234, rue Sainte-Catherine Ouest", "1234, rue Sainte-Catherine Ouest"),
        ("ref _1 1234, rue Sainte-Catherine Ouest .", "1234, rue Sainte-Catherine Ouest"),
    ],
)
def test_one_number_before_the_civic_number_keeps_the_address(engine: veil.Engine, text: str, address: str) -> None:
    assert [text[s.start : s.end] for s in engine.detect(text) if s.entity == "ADDRESS"] == [address]


def test_the_last_group_of_a_spaced_number_is_not_a_civic_number(engine: veil.Engine) -> None:
    text = "NAS 130 692 544 Queen St"
    assert [s.entity for s in engine.detect(text)] == ["CA_SIN"]
