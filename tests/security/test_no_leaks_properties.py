"""Properties of the whole core on generated inputs (hypothesis):

- no canary survives: the example values of every built-in rule (each one a value of its
  entity type that the engine finds in a plain sentence), put among generated words in any
  field of any message shape (text, chat content and content parts, tool-call arguments, tool
  results, nested JSON), never appear in what anonymize returns;
- anonymize → restore is the identity on the same shapes (arguments compared as parsed JSON);
- streaming restore of an anonymized answer equals the unary restore for any chunking;
- tokens of one scope never restore in another scope, nor in another tenant, on a shared
  persistent vault.

VEIL_PROPERTY_EXAMPLES sets the number of examples per property (default 40; the long run in
docs/reliability.md uses thousands).
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import veil
from veil.detect.rules import BUILTIN_RULES
from veil.normalize import normalize_value

EXAMPLES = int(os.environ.get("VEIL_PROPERTY_EXAMPLES", "40"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def canaries() -> tuple[tuple[str, str, str], ...]:
    """(entity, value, language) for every rule example found whole in a plain sentence."""
    engines = {lang: veil.Engine(veil.Policy(ner="off"), language=lang) for lang in ("en", "fr")}
    found = []
    for rule in BUILTIN_RULES:
        language = "en" if "en" in rule.languages else rule.languages[0]
        for example in rule.examples:
            text = f"Note: {example} ."
            spans = engines[language].detect(text)
            start = len("Note: ")
            if any(s.start <= start and s.end >= start + len(example) for s in spans):
                found.append((str(rule.entity), example, language))
    return tuple(found)


def test_the_canaries_cover_almost_every_rule() -> None:
    entities = {str(rule.entity) for rule in BUILTIN_RULES}
    covered = {entity for entity, _, _ in canaries()}
    assert len(covered) >= len(entities) - 2, sorted(entities - covered)


WORDS = st.sampled_from(
    "the le la de and et please merci call appelez client dossier note update order commande "
    "Jean Marie total {{ }} _1 : , ; ( ) « » — \n".split(" ")
)
filler = st.lists(WORDS, max_size=6).map(" ".join)


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A text holding some canaries among words, and the canaries it holds (one language)."""
    language = draw(st.sampled_from(["en", "fr"]))
    pool = [c for c in canaries() if c[2] == language or c[2] == "en"]
    chosen = draw(
        st.lists(st.sampled_from(pool), min_size=1, max_size=4, unique_by=lambda c: (c[0], normalize_value(c[0], c[1])))
    )
    parts = []
    for _, value, _ in chosen:
        parts.extend([draw(filler), " ", value, " ", draw(st.sampled_from([".", ",", ";", "!", ""])), " "])
    parts.append(draw(filler))
    return "".join(parts), [value for _, value, _ in chosen]


SHAPES = ("text", "content", "parts", "arguments", "tool_result", "nested")


def shaped(shape: str, text: str) -> Any:
    if shape == "text":
        return text
    if shape == "content":
        return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]
    if shape == "parts":
        return [{"role": "user", "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {}}]}]
    if shape == "arguments":
        arguments = json.dumps({"to": text, "list": [text, {"deep": text}]}, ensure_ascii=False)
        call = {"id": "c1", "type": "function", "function": {"name": "send", "arguments": arguments}}
        return [{"role": "user", "content": "go"}, {"role": "assistant", "content": None, "tool_calls": [call]}]
    if shape == "tool_result":
        return [{"role": "tool", "tool_call_id": "c1", "content": text}]
    return {"metadata": {"a": [text, {"b": text}]}, "input": text}


def strings(value: Any) -> list[str]:
    """Every string leaf, tool-call arguments parsed (a JSON document inside a string)."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return [value]
        return [value, *strings(parsed)] if not isinstance(parsed, str) else [value, parsed]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in strings(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in strings(item)]
    return []


def normalised(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: ("json", json.loads(item)) if key == "arguments" and isinstance(item, str) else normalised(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [normalised(item) for item in value]
    return value


@cache
def shared() -> veil.Veil:
    return veil.Veil(policy=veil.Policy(ner="off"), audit_traffic=False)


_scopes = iter(range(10**9))


@SETTINGS
@given(documents(), st.sampled_from(SHAPES))
def test_no_canary_survives_anonymization_in_any_field_of_any_shape(
    document: tuple[str, list[str]], shape: str
) -> None:
    text, values = document
    sent = shared().session(f"leak-{next(_scopes)}").anonymize(shaped(shape, text))
    for leaf in strings(sent.value):
        for value in values:
            assert value not in leaf, (value, leaf)


@SETTINGS
@given(documents(), st.sampled_from(SHAPES))
def test_anonymize_then_restore_gives_back_every_shape(document: tuple[str, list[str]], shape: str) -> None:
    text, _ = document
    session = shared().session(f"roundtrip-{next(_scopes)}")
    original = shaped(shape, text)
    sent = session.anonymize(original)
    assert normalised(session.restore(sent.value)) == normalised(original)


@SETTINGS
@given(documents(), st.lists(st.integers(min_value=0, max_value=40), max_size=30))
def test_streaming_restore_of_an_anonymized_answer_equals_unary_for_any_chunking(
    document: tuple[str, list[str]], cuts: list[int]
) -> None:
    text, _ = document
    session = shared().session(f"stream-{next(_scopes)}")
    answer = "Sure: " + session.anonymize(text).text + " — done."
    expected = session.restore(answer)
    streaming = session.stream_restorer()
    shown, position = "", 0
    for cut in cuts:
        shown += streaming.feed(answer[position : position + cut])
        assert expected.startswith(shown)
        position += cut
    assert shown + streaming.feed(answer[position:]) + streaming.flush() == expected


@settings(max_examples=max(10, EXAMPLES // 4), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_tokens_never_restore_in_another_scope_or_tenant_on_a_shared_vault(document: tuple[str, list[str]]) -> None:
    text, values = document
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        alice = veil.Veil.open(path, policy=veil.Policy(ner="off"), tenant="alice", audit_traffic=False)
        bob = veil.Veil.open(path, policy=veil.Policy(ner="off"), tenant="bob", audit_traffic=False)
        try:
            sent = alice.session("case-1").anonymize(text).text
            assert alice.session("case-1").restore(sent) == text  # a new session of the scope restores
            for other in (alice.session("case-2"), bob.session("case-1")):
                restored = other.restore(sent, lenient=True)
                for value in values:
                    assert value not in restored
        finally:
            alice.close()
            bob.close()
