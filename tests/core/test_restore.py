"""Restore: exact, mangled and bare tokens, drift, strictness; streaming equals unary."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veil.errors import TokenNotFound
from veil.restore import Restorer, StreamingRestorer

VALUES = {
    "{{EMAIL_1}}": "jean.roy@exemple.ca",
    "{{PERSON_1}}": "Jean Roy",
    "{{PERSON_10}}": "Ann {Lee}",  # a value with braces must not confuse anything
    "{{CA_SIN_1}}": "130 692 544",
    "{{PHONE_2}}": '"quoted" \\ value',
}


def restorer(*, lenient: bool = False, escape=None) -> Restorer:  # type: ignore[no-untyped-def]
    return Restorer(VALUES.get, known=VALUES.keys, lenient=lenient, escape=escape)


def test_exact_tokens_are_restored_and_person_1_is_not_a_prefix_of_person_10() -> None:
    result = restorer().restore("{{PERSON_1}} met {{PERSON_10}} ({{CA_SIN_1}})")
    assert result.text == "Jean Roy met Ann {Lee} (130 692 544)"
    assert result.count == 3
    assert result.drift.clean


@pytest.mark.parametrize(
    "mangled",
    ["{{ email_1 }}", "{EMAIL_1}", "{{EMAIL_1}", "{EMAIL_1}}", r"\{\{EMAIL_1\}\}", "{{Email_1}}", "EMAIL_1"],
)
def test_tokens_mangled_by_models_are_restored_and_reported_as_altered(mangled: str) -> None:
    result = restorer().restore(f"Write to {mangled}.")
    assert result.text == "Write to jean.roy@exemple.ca."
    assert result.drift.altered == ("{{EMAIL_1}}",)


def test_bare_names_that_are_not_tokens_of_the_scope_stay_as_written() -> None:
    text = "COVID_19 and MAX_VALUE_3 and EMAIL_9 and my_EMAIL_1 and EMAIL_1x"
    assert restorer().restore(text).text == text


def test_unknown_tokens_raise_unless_lenient() -> None:
    with pytest.raises(TokenNotFound, match=r"\{\{EMAIL_7\}\}"):
        restorer().restore("Mail {{EMAIL_7}}")
    result = restorer(lenient=True).restore("Mail {{EMAIL_7}} or {{EMAIL_1}}")
    assert result.text == "Mail {{EMAIL_7}} or jean.roy@exemple.ca"
    assert result.drift.invented == ("{{EMAIL_7}}",)


def test_drift_reports_tokens_the_model_dropped() -> None:
    result = restorer().restore("Only {{EMAIL_1}}", expected=["{{EMAIL_1}}", "{{CA_SIN_1}}"])
    assert result.drift.dropped == ("{{CA_SIN_1}}",)
    assert result.drift.to_dict() == {"dropped": ["{{CA_SIN_1}}"], "altered": [], "invented": []}


def test_escape_is_applied_to_restored_values_inside_json_strings() -> None:
    import json

    escape = lambda value: json.dumps(value)[1:-1]  # noqa: E731
    result = restorer(escape=escape).restore('{"to": "{{PHONE_2}}"}')
    assert json.loads(result.text) == {"to": '"quoted" \\ value'}


# -- streaming ---------------------------------------------------------------------------------

TOKEN_FORMS = st.sampled_from([
    "{{EMAIL_1}}", "{{PERSON_1}}", "{{PERSON_10}}", "{{CA_SIN_1}}", "{{ email_1 }}", "{EMAIL_1}", "EMAIL_1",
    r"\{\{PERSON_1\}\}", "{{EMAIL_1}", "{{PHONE_2}}", "{", "}", "{{", "}}", "\\", "_1", "EMAIL_", "PERSON_1",
    "{{PERSON_", "{{UNKNOWN_5}}", "{{NOT A TOKEN}}", "{{{EMAIL_1}}}",
])  # fmt: skip
FILLER = st.text(alphabet=st.sampled_from(list("ab {}_\\EMAIL1é\n.")), max_size=8)
TEXTS = st.lists(st.one_of(TOKEN_FORMS, FILLER), max_size=25).map("".join)


@st.composite
def chunked(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(TEXTS)
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=max(1, len(text) - 1)), max_size=len(text))))
    cuts = [c for c in cuts if 0 < c < len(text)]
    bounds = [0, *cuts, len(text)]
    return text, [text[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=400, deadline=None)
@given(chunked())
def test_streaming_equals_unary_for_any_chunking_and_never_shows_half_a_token(case: tuple[str, list[str]]) -> None:
    text, chunks = case
    expected = restorer(lenient=True).restore(text).text
    streaming = StreamingRestorer(restorer(lenient=True))
    shown = ""
    for chunk in chunks:
        shown += streaming.feed(chunk)
        # Whatever was shown is final: a prefix of the unary result, so never a half-restored token.
        assert expected.startswith(shown)
    shown += streaming.flush()
    assert shown == expected


def test_a_chunk_shown_at_once_still_gives_its_last_character_as_context() -> None:
    # "abc" has no character a token form starts with (shown without any matching), yet a bare
    # form right after it is part of a word, not a token: as in the unary restore.
    for before, restored in (("abc", False), ("ab ", True)):
        text = f"{before}EMAIL_1 ok"
        expected = restorer(lenient=True).restore(text).text
        assert (expected != text) is restored
        streaming = StreamingRestorer(restorer(lenient=True))
        assert streaming.feed(before) == before
        assert before + streaming.feed("EMAIL_1 ok") + streaming.flush() == expected


def test_streaming_emits_text_that_cannot_be_a_token_at_once() -> None:
    streaming = StreamingRestorer(restorer())
    assert streaming.feed("Hello there, ") == "Hello there, "
    assert streaming.feed("mail {{EMA") == "mail "
    assert streaming.feed("IL_1}} now") == "jean.roy@exemple.ca now"
    assert streaming.feed(" PERS") == " "  # could be the bare form of a known token
    assert streaming.feed("ONAL matters") == "PERSONAL matters"
    assert streaming.flush() == ""


def test_streaming_holds_back_at_most_the_longest_token_form() -> None:
    streaming = StreamingRestorer(restorer(lenient=True))
    out = streaming.feed("{{" + "A" * 200)
    assert len(out) >= 100  # the rest cannot be a token any more


def test_streaming_drift_is_reported_at_the_end() -> None:
    streaming = StreamingRestorer(restorer(lenient=True), expected=["{{EMAIL_1}}", "{{CA_SIN_1}}"])
    for chunk in ["Mail {{ema", "il_1}} or {{PHONE_", "9}}"]:
        streaming.feed(chunk)
    streaming.flush()
    assert streaming.drift.dropped == ("{{CA_SIN_1}}",)
    assert streaming.drift.altered == ("{{EMAIL_1}}",)
    assert streaming.drift.invented == ("{{PHONE_9}}",)


@settings(max_examples=200, deadline=None)
@given(chunked())
def test_streamed_tool_call_arguments_restore_like_unary_with_json_escaping(case: tuple[str, list[str]]) -> None:
    import json

    escape = lambda value: json.dumps(value)[1:-1]  # noqa: E731
    text, chunks = case
    expected = restorer(lenient=True, escape=escape).restore(text).text
    streaming = StreamingRestorer(restorer(lenient=True, escape=escape))
    shown = ""
    for chunk in chunks:
        shown += streaming.feed(chunk)
        assert expected.startswith(shown)
    assert shown + streaming.flush() == expected
    # and inside a JSON document, the restored arguments still parse, quotes and backslashes included
    document = '{"to": "' + "{{PHONE_2}}" + '"}'
    stream = StreamingRestorer(restorer(escape=escape))
    out = "".join(stream.feed(document[i : i + 3]) for i in range(0, len(document), 3)) + stream.flush()
    assert json.loads(out) == {"to": VALUES["{{PHONE_2}}"]}
