"""restore(anonymize(x)) == x, for generated bilingual documents full of identifiers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from veil.session import Veil

VALUES = [
    "jean.roy@exemple.ca", "(514) 555-0199", "+1 438 555 0142", "130 692 544", "4111 1111 1111 1111",
    "5500-0000-0000-0004", "FR76 3000 6000 0112 3456 7890 189", "DE89370400440532013000", "TREM 8557 1412",
    "1 93 02 35 486 714 41", "192.168.10.20", "2001:db8:85a3::8a2e:370:7334", "https://exemple.ca/dossier?id=42",
    "28 juillet 1993", "July 28, 1993", "1995-07-03", "1234, rue Sainte-Catherine Ouest, Montréal (Québec) H3G 1P7",
    "42 Maple Ave, Apt 5, Toronto, ON M5V 2T6", "H2X 1Y4", "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
]  # fmt: skip
FILLER = [
    "Bonjour,", "merci", "la commande 48213", "est en attente.", "Please", "update", "the file", "NAS", "SIN",
    "né le", "born", "carte", "card", "IBAN", "courriel", "call", "{", "}", "{{", "_1", "EMAIL_1", "à", "l'adresse",
    "\n", ";", "(", ")", "—", "«", "»",
]  # fmt: skip

DOCUMENTS = st.lists(st.one_of(st.sampled_from(VALUES), st.sampled_from(FILLER)), min_size=1, max_size=30).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(DOCUMENTS, min_size=1, max_size=4))
def test_anonymize_then_restore_is_the_identity(documents: list[str]) -> None:
    veil = Veil()
    session = veil.session("docs")
    for document in documents:
        sent = session.anonymize(document)
        for value in VALUES:
            if value in document:
                assert value not in sent.text
        assert session.restore(sent.text) == document


@settings(max_examples=100, deadline=None)
@given(DOCUMENTS)
def test_tokens_of_one_scope_never_restore_in_another(document: str) -> None:
    veil = Veil()
    sent = veil.session("a").anonymize(document)
    restored = veil.session("b").restore(sent.text, lenient=True)
    for value in VALUES:
        if value in document and value not in sent.text:
            assert value not in restored
