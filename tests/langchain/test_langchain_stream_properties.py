"""Property: whatever the answer and however the upstream cuts it into chunks, VeilChatModel's
stream, concatenated, equals its unary answer, and a token is never shown in part."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage
from langchain_fakes import RecordingChatModel
from veil_langchain import VeilChatModel

from veil import Engine, Veil
from veil.detect import BUILTIN_RULES, RuleDetector

EMAIL = "marie.tremblay@exemple.qc.ca"
SIN = "130 692 544"
VEIL = Veil(engine=Engine(detectors=[RuleDetector(BUILTIN_RULES)]))
VEIL.session("properties").anonymize(f"{EMAIL} {SIN}")  # the scope knows {{EMAIL_1}} and {{CA_SIN_1}}

WORDS = st.sampled_from(["{{EMAIL_1}}", "{{CA_SIN_1}}", "{{ email_1 }}", "EMAIL_1", " ", "ok", "é", "\n", "E", "_1"])
NOISE = st.sampled_from(["{", "}", "{{", "}}", "\\{", "EMAIL_", "{{EMAIL_9}}"])


def answers(model_answer: str, chunk_size: int) -> tuple[str, list[str]]:
    upstream = RecordingChatModel(script=[AIMessage(model_answer), AIMessage(model_answer)], chunk_size=chunk_size)
    llm = VeilChatModel(model=upstream, veil=VEIL, scope="properties", lenient=True)
    unary = llm.invoke("question").text
    return unary, [chunk.text for chunk in llm.stream("question")]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(WORDS, NOISE), max_size=12), st.integers(min_value=1, max_value=9))
def test_stream_concatenates_to_the_unary_answer(parts: list[str], chunk_size: int) -> None:
    unary, pieces = answers("".join(parts), chunk_size)
    assert "".join(pieces) == unary


@settings(max_examples=150, deadline=None)
@given(st.lists(WORDS, max_size=12), st.integers(min_value=1, max_value=9))
def test_no_piece_of_a_token_is_ever_shown(parts: list[str], chunk_size: int) -> None:
    unary, pieces = answers("".join(parts), chunk_size)
    assert "{" not in unary and "}" not in unary  # every token restored, mangled forms included
    assert "".join(pieces) == unary  # so a bare `EMAIL_1` shown in part would show here, unrestored
    for piece in pieces:
        assert "{" not in piece and "}" not in piece
