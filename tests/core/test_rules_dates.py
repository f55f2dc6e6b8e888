"""DATE and DATE_OF_BIRTH: numeric, ISO and written dates in English and French.

A date is a DATE; it becomes a DATE_OF_BIRTH when birth words stand before it in the same clause
("né le", "née le", "born", "date de naissance", "DOB" …). Dates that do not exist are not dates.
"""

from __future__ import annotations

import pytest
from span_checks import found

import veil


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("Rendez-vous le 28 juillet 1993 à 14 h.", "28 juillet 1993"),
        ("Le contrat commence le 1er mars 2024.", "1er mars 2024"),
        ("Facture du 3 févr. 2001, payée", "3 févr. 2001"),
        ("Échéance : 15 août 2025", "15 août 2025"),
        ("Le 1er de mars 2024, tout change", "1er de mars 2024"),
        ("The meeting is on 28 July 1993.", "28 July 1993"),
        ("The meeting is on July 28, 1993.", "July 28, 1993"),
        ("Shipped Jul. 28th 1993 by air", "Jul. 28th 1993"),
        ("Signed September 3 2001", "September 3 2001"),
        ("DUE: JULY 28, 1993", "JULY 28, 1993"),
        ("le 28 JUILLET 1993", "28 JUILLET 1993"),
        ("le 29 février 2024 (année bissextile)", "29 février 2024"),
    ],
)
def test_written_date_is_a_date(engine: veil.Engine, text: str, date: str) -> None:
    assert found(engine, text) == [("DATE", date)]


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("Rendez-vous le 03/07/1995.", "03/07/1995"),
        ("le 7-3-1995", "7-3-1995"),
        ("due 03/07/95", "03/07/95"),
        ("due 12/31/2024", "12/31/2024"),
        ("échéance 31/12/2024", "31/12/2024"),
        ("le 03.07.1995", "03.07.1995"),
        ("Paid on 1995-07-03.", "1995-07-03"),
        ("Payé le 2024/3/1", "2024/3/1"),
    ],
)
def test_numeric_and_iso_date_is_a_date(engine: veil.Engine, text: str, date: str) -> None:
    assert found(engine, text) == [("DATE", date)]


@pytest.mark.parametrize(
    "text",
    [
        "le 32 juillet 1993",
        "le 29 février 2023",
        "le 31 avril 2024",
        "on 28 julio 1993",
        "Paid on 2024-02-30",
        "2024-13-01",
        "13/13/2020",
        "expiry 09/29",
        "score 3/4",
        "version 1.2.3",
        "page 28, 1993 edition",
    ],
)
def test_what_is_not_a_real_date_is_not_a_date(engine: veil.Engine, text: str) -> None:
    assert [entity for entity, _ in found(engine, text) if entity in ("DATE", "DATE_OF_BIRTH")] == []


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("Il est né le 28 juillet 1993 à Québec.", "28 juillet 1993"),
        ("Elle est née le 1er mars 2024.", "1er mars 2024"),
        ("Elle est nee le 1er mars 2024.", "1er mars 2024"),
        ("né(e) le 3 févr. 2001", "3 févr. 2001"),
        ("Date de naissance : 28 juillet 1993", "28 juillet 1993"),
        ("Naissance : 1995-07-03", "1995-07-03"),
        ("DDN 03.07.1995", "03.07.1995"),
        ("She was born July 28, 1993.", "July 28, 1993"),
        ("Born on 28 July 1993 in Montreal", "28 July 1993"),
        ("date of birth: 28 July 1993", "28 July 1993"),
        ("DOB: 03/07/1995", "03/07/1995"),
        ("D.O.B. 1995-07-03", "1995-07-03"),
        ("Birthday: Sept. 3, 2001", "Sept. 3, 2001"),
    ],
)
def test_date_after_birth_words_is_a_date_of_birth(engine: veil.Engine, text: str, date: str) -> None:
    assert found(engine, text) == [("DATE_OF_BIRTH", date)]


def test_birth_words_promote_a_date_only_when_it_is_valid(engine: veil.Engine) -> None:
    assert found(engine, "né le 32 juillet 1993") == []


@pytest.mark.parametrize(
    "text",
    [
        "Elle est née le 28 juillet 1993; rendez-vous le 3 mars 2024",
        "Born 28 July 1993. Hired 3 March 2024.",
        "DOB 28 July 1993\nAppointment 3 March 2024",
    ],
)
def test_birth_words_do_not_reach_a_date_in_the_next_clause(engine: veil.Engine, text: str) -> None:
    assert [entity for entity, _ in found(engine, text)] == ["DATE_OF_BIRTH", "DATE"]


def test_the_negation_ne_le_is_not_a_birth_word(engine: veil.Engine) -> None:
    assert found(engine, "Il ne le savait pas avant le 3 mars 2024") == [("DATE", "3 mars 2024")]


def test_upper_case_french_ordinal_date_is_a_date(engine: veil.Engine) -> None:
    assert found(engine, "ÉCHÉANCE : 1ER MARS 2024") == [("DATE", "1ER MARS 2024")]


def test_english_day_of_month_date_is_a_date(engine: veil.Engine) -> None:
    assert found(engine, "due on the 3rd of March 2024") == [("DATE", "3rd of March 2024")]
