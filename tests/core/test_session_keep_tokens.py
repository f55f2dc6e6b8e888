"""Session.anonymize(keep_tokens=True): text anonymized earlier in the scope goes through again unchanged.

Retrieval-augmented generation puts stored, already-anonymized nodes into a prompt beside the
user's raw question; the scope's own tokens must stay the tokens the vector store holds.
"""

from __future__ import annotations

from veil.session import Veil

NODE = "Client: marie.tremblay@exemple.qc.ca, NAS 130 692 544."


def test_a_token_of_the_scope_is_kept_and_restores_to_its_value() -> None:
    session = Veil().session("collection")
    stored = session.anonymize(NODE).text
    assert stored == "Client: {{EMAIL_1}}, NAS {{CA_SIN_1}}."
    prompt = session.anonymize(f"Context: {stored}\nQuestion: what is marie.tremblay@exemple.qc.ca's SIN?",
                               keep_tokens=True)  # fmt: skip
    assert prompt.text == "Context: Client: {{EMAIL_1}}, NAS {{CA_SIN_1}}.\nQuestion: what is {{EMAIL_1}}'s SIN?"
    assert prompt.pii_count == 1  # the kept tokens are not replacements
    answer = session.restore("{{CA_SIN_1}} belongs to {{EMAIL_1}}")
    assert answer == "130 692 544 belongs to marie.tremblay@exemple.qc.ca"


def test_kept_tokens_count_as_sent_so_their_bare_form_restores() -> None:
    session = Veil().session("collection")
    stored = session.anonymize(NODE).text
    later = session.veil.session("collection")  # a new request on the same scope
    later.anonymize(stored, keep_tokens=True)
    assert later.sent_tokens == ("{{EMAIL_1}}", "{{CA_SIN_1}}")
    assert later.restore("EMAIL_1") == "marie.tremblay@exemple.qc.ca"


def test_without_keep_tokens_a_token_in_the_input_stays_a_literal() -> None:
    session = Veil().session("collection")
    stored = session.anonymize(NODE).text
    again = session.anonymize(stored)
    assert "{{EMAIL_1}}" not in again.text
    assert session.restore(again.text) == stored


def test_a_token_of_another_scope_or_an_unknown_one_becomes_a_literal_even_when_keeping() -> None:
    veil = Veil()
    veil.session("other").anonymize("a@exemple.ca b@exemple.ca")
    session = veil.session("collection")
    session.anonymize("marie.tremblay@exemple.qc.ca")
    sent = session.anonymize("{{EMAIL_1}} {{EMAIL_2}} {{EMAIL_9}}", keep_tokens=True)
    assert sent.text.startswith("{{EMAIL_1}} ")
    assert "{{EMAIL_2}}" not in sent.text and "{{EMAIL_9}}" not in sent.text
    assert session.restore(sent.text) == "marie.tremblay@exemple.qc.ca {{EMAIL_2}} {{EMAIL_9}}"
