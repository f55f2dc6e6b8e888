"""Veil and Session: reversible anonymization of texts, messages and JSON within a scope."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from veil.crypto import LocalKeyFileProvider
from veil.errors import ConfigError, IntegrityError, KeyUnavailable, TokenNotFound
from veil.session import Veil
from veil.vault import SQLiteVault

TICKET = "Écrivez à jean.roy@exemple.ca ou au (514) 555-0199. NAS 130 692 544."


@pytest.fixture
def veil() -> Veil:
    return Veil()


def test_anonymize_replaces_values_with_numbered_tokens_and_restore_brings_them_back(veil: Veil) -> None:
    session = veil.session("conv-1")
    sent = session.anonymize(TICKET)
    assert sent.text == "Écrivez à {{EMAIL_1}} ou au {{PHONE_1}}. NAS {{CA_SIN_1}}."
    assert sent.tokens == {"{{EMAIL_1}}": "EMAIL", "{{PHONE_1}}": "PHONE", "{{CA_SIN_1}}": "CA_SIN"}
    assert sent.pii_count == 3
    assert sent.pii_types == ["CA_SIN", "EMAIL", "PHONE"]
    assert session.restore(sent.text) == TICKET


def test_one_value_one_token_in_a_scope_whatever_its_spelling(veil: Veil) -> None:
    session = veil.session("conv-1")
    first = session.anonymize("Jean.Roy@Exemple.ca").text
    second = session.anonymize("écrivez à jean.roy@exemple.ca, tél 514.555.0199 ou +1 (514) 555-0199").text
    assert first == "{{EMAIL_1}}"
    assert second == "écrivez à {{EMAIL_1}}, tél {{PHONE_1}} ou {{PHONE_1}}"


def test_two_values_never_share_a_token(veil: Veil) -> None:
    session = veil.session("conv-1")
    text = session.anonymize("a@x.ca b@x.ca c@x.ca a@x.ca").text
    assert text == "{{EMAIL_1}} {{EMAIL_2}} {{EMAIL_3}} {{EMAIL_1}}"


def test_a_new_session_on_the_same_scope_finds_the_same_tokens(veil: Veil) -> None:
    veil.session("collection").anonymize("document one: a@x.ca")
    later = veil.session("collection")
    assert later.anonymize("query: A@X.CA").text == "query: {{EMAIL_1}}"
    assert later.restore("{{EMAIL_1}}") == "a@x.ca"


def test_scopes_and_tenants_do_not_share_mappings(veil: Veil) -> None:
    veil.session("s1").anonymize("a@x.ca")
    assert veil.session("s2").anonymize("b@x.ca").text == "{{EMAIL_1}}"
    with pytest.raises(TokenNotFound):
        veil.session("s1", tenant="other").restore("{{EMAIL_1}}")
    assert veil.session("s2").restore("{{EMAIL_1}}") == "b@x.ca"


def test_chat_messages_with_tool_calls_are_anonymized_leaf_by_leaf(veil: Veil) -> None:
    session = veil.session("agent")
    messages = [
        {"role": "system", "content": "You help customers."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Mail jean@x.ca"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "send_mail", "arguments": '{"to": "jean@x.ca", "n": 2}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sent to jean@x.ca"},
    ]
    sent = session.anonymize(messages)
    assert sent.value[1]["content"][0]["text"] == "Mail {{EMAIL_1}}"
    assert sent.value[1]["content"][1] == messages[1]["content"][1]  # type: ignore[index]
    call = sent.value[2]["tool_calls"][0]
    assert call["function"]["name"] == "send_mail"
    assert json.loads(call["function"]["arguments"]) == {"to": "{{EMAIL_1}}", "n": 2}
    assert sent.value[3] == {"role": "tool", "tool_call_id": "call_1", "content": "sent to {{EMAIL_1}}"}
    assert session.restore(sent.value) == [
        messages[0],
        messages[1],
        {
            **messages[2],
            "tool_calls": [
                {
                    **messages[2]["tool_calls"][0],
                    "function": {  # type: ignore[index]
                        "name": "send_mail",
                        "arguments": '{"to": "jean@x.ca", "n": 2}',
                    },
                }
            ],
        },
        messages[3],
    ]


def test_json_values_keep_their_tool_definitions_and_keys(veil: Veil) -> None:
    session = veil.session("json")
    body = {
        "model": "gpt-x",
        "tools": [{"type": "function", "function": {"name": "lookup", "description": "Find jean@x.ca"}}],
        "customer": {"email": "jean@x.ca", "notes": ["call 514-555-0199"], "age": 42},
    }
    sent = session.anonymize(body).value
    assert sent["tools"] == body["tools"]
    assert sent["customer"] == {"email": "{{EMAIL_1}}", "notes": ["call {{PHONE_1}}"], "age": 42}
    assert session.restore(sent) == {**body, "tools": body["tools"]}


def test_streamed_tool_call_arguments_are_restored_with_json_escaping(veil: Veil) -> None:
    session = veil.session("tools")
    session.token_for("PERSON", 'Jean "JR" Roy')
    stream = session.stream_restorer(json_string=True)
    chunks = ['{"name": "{{PER', 'SON_1}}", "x": 1}']
    out = "".join(stream.feed(c) for c in chunks) + stream.flush()
    assert json.loads(out) == {"name": 'Jean "JR" Roy', "x": 1}


def test_restore_of_unknown_tokens_raises_unless_lenient(veil: Veil) -> None:
    session = veil.session("s")
    with pytest.raises(TokenNotFound):
        session.restore("{{EMAIL_3}}")
    assert session.restore("{{EMAIL_3}}", lenient=True) == "{{EMAIL_3}}"
    report = session.restore_report("{{EMAIL_3}}", lenient=True)
    assert report.drift.invented == ("{{EMAIL_3}}",)


def test_erasing_a_subject_removes_their_values_everywhere(veil: Veil) -> None:
    veil.session("s1", subject="customer-42").anonymize("a@x.ca")
    veil.session("s2", subject="customer-42").anonymize("b@x.ca")
    veil.session("s1", subject="customer-7").anonymize("c@x.ca")
    assert veil.erase_subject("customer-42") == 2
    session = veil.session("s1")
    assert session.restore("{{EMAIL_2}}") == "c@x.ca"
    with pytest.raises(TokenNotFound):
        session.restore("{{EMAIL_1}}")


def test_mappings_expire_after_their_ttl(veil: Veil, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    session = veil.session("short", ttl=60)
    session.anonymize("a@x.ca")
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(TokenNotFound):
        veil.session("short").restore("{{EMAIL_1}}")


# -- persistence and integrity --------------------------------------------------------------------


def test_the_embedded_vault_survives_a_restart(tmp_path: Path) -> None:
    first = Veil.open(tmp_path / "v")
    token = first.session("conv").anonymize("a@x.ca").text
    first.close()
    second = Veil.open(tmp_path / "v")
    assert second.session("conv").restore(token) == "a@x.ca"
    assert (tmp_path / "v" / "keys.json").stat().st_mode & 0o777 == 0o600


def test_no_plaintext_is_stored_in_the_vault_file(tmp_path: Path) -> None:
    veil = Veil.open(tmp_path / "v")
    veil.session("conv").anonymize("Écrivez à jean.roy@exemple.ca, NAS 130 692 544")
    veil.close()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "v").glob("vault.db*"))
    assert b"jean.roy" not in raw
    assert b"130 692 544" not in raw
    assert b"130692544" not in raw


def test_a_row_moved_to_another_token_fails_to_decrypt(tmp_path: Path) -> None:
    veil = Veil.open(tmp_path / "v")
    veil.session("conv").anonymize("a@x.ca b@x.ca")
    with sqlite3.connect(tmp_path / "v" / "vault.db") as db:
        _first, second = db.execute("SELECT ciphertext FROM veil_mappings ORDER BY token").fetchall()
        db.execute("UPDATE veil_mappings SET ciphertext = ? WHERE token = '{{EMAIL_1}}'", (second[0],))
    with pytest.raises(IntegrityError, match="failed authentication"):
        Veil.open(tmp_path / "v").session("conv").restore("{{EMAIL_1}}")


def test_a_tampered_row_fails_to_decrypt_and_the_message_has_no_value(tmp_path: Path) -> None:
    veil = Veil.open(tmp_path / "v")
    veil.session("conv").anonymize("jean@x.ca")
    with sqlite3.connect(tmp_path / "v" / "vault.db") as db:
        (blob,) = db.execute("SELECT ciphertext FROM veil_mappings").fetchone()
        db.execute("UPDATE veil_mappings SET ciphertext = ?", (blob[:-1] + bytes([blob[-1] ^ 1]),))
    with pytest.raises(IntegrityError) as error:
        Veil.open(tmp_path / "v").session("conv").restore("{{EMAIL_1}}")
    assert "jean" not in str(error.value)


def test_a_wrong_key_file_cannot_open_the_vault(tmp_path: Path) -> None:
    veil = Veil.open(tmp_path / "v")
    veil.session("conv").anonymize("jean@x.ca")
    other = Veil(vault=SQLiteVault(tmp_path / "v" / "vault.db"), keys=LocalKeyFileProvider(tmp_path / "other.json"))
    with pytest.raises((KeyUnavailable, IntegrityError)):
        other.session("conv").restore("{{EMAIL_1}}")


def test_a_persistent_vault_without_a_key_provider_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="key provider"):
        Veil(vault=SQLiteVault(tmp_path / "v.db"))


def test_key_rotation_keeps_every_mapping_restorable(tmp_path: Path) -> None:
    veil = Veil.open(tmp_path / "v")
    session = veil.session("conv")
    text = session.anonymize("a@x.ca and 130 692 544").text
    ref, rewrapped = veil.rotate_keys(actor="ops")
    assert ref.version == 2
    assert rewrapped == len(veil.vault.keys.data_keys())  # every data key, none left behind
    assert {key.kek for key in veil.vault.keys.data_keys()} == {ref}
    fresh = Veil.open(tmp_path / "v")
    assert fresh.session("conv").restore(text) == "a@x.ca and 130 692 544"
    assert fresh.session("conv").anonymize("a@x.ca").text == "{{EMAIL_1}}"  # blind index unchanged
    fresh.keys.retire(type(ref)(ref.key_id, 1))
    assert Veil.open(tmp_path / "v").session("conv").restore(text) == "a@x.ca and 130 692 544"


def test_the_legacy_function_call_arguments_of_an_assistant_message_are_anonymized(veil: Veil) -> None:
    # Regression: a legacy `function_call` (pre-tools OpenAI format) went upstream in clear.
    session = veil.session("legacy")
    messages = [
        {"role": "user", "content": "Find my order"},
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "lookup", "arguments": '{"email": "jean@x.ca"}'},
        },
        {"role": "function", "name": "lookup", "content": "jean@x.ca has order 7"},
    ]
    sent = session.anonymize(messages).value
    assert sent[1]["function_call"] == {"name": "lookup", "arguments": '{"email": "{{EMAIL_1}}"}'}
    assert sent[2]["content"] == "{{EMAIL_1}} has order 7"
    assert session.restore(sent) == messages


def test_request_metadata_is_the_callers_data_and_is_anonymized(veil: Veil) -> None:
    session = veil.session("metadata")
    body = {"model": "gpt-x", "metadata": {"customer": "jean@x.ca"}, "function_call": "auto"}
    sent = session.anonymize(body).value
    assert sent == {"model": "gpt-x", "metadata": {"customer": "{{EMAIL_1}}"}, "function_call": "auto"}


def test_a_name_inside_tool_arguments_is_anonymized_even_beside_an_arguments_key(veil: Veil) -> None:
    # Regression: {"name": …, "arguments": …} inside a tool call's arguments kept "name" in clear.
    session = veil.session("nested")
    call = {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
        "name": "send", "arguments": json.dumps({"name": "jean@x.ca", "arguments": "to jean@x.ca"})}}]}  # fmt: skip
    sent = session.anonymize([call]).value
    arguments = json.loads(sent[0]["tool_calls"][0]["function"]["arguments"])
    assert arguments == {"name": "{{EMAIL_1}}", "arguments": "to {{EMAIL_1}}"}
    assert sent[0]["tool_calls"][0]["function"]["name"] == "send"


def test_a_veil_with_another_engine_shares_the_vault_so_tokens_restore_across_modes(veil: Veil) -> None:
    from veil import Engine, Policy

    permissive = veil.with_engine(Engine(Policy(mode="permissive", ner="off")))
    assert permissive.engine.policy.mode == "permissive" and veil.engine.policy.mode == "strict"
    sent = veil.session("shared").anonymize("Écrivez à jean@x.ca").text
    assert permissive.session("shared").restore(sent) == "Écrivez à jean@x.ca"
    assert permissive.vault is veil.vault and permissive.audit is veil.audit


def test_errors_for_a_value_passed_where_a_token_or_an_entity_goes_do_not_repeat_it() -> None:
    # Regressions (canary scan): `require` quoted its argument, and `token_for` made a token (stored
    # in clear) out of any entity string, a value passed by mistake included.
    session = Veil().session("conv", tenant="acme")
    email = "marie.tremblay@exemple.qc.ca"
    with pytest.raises(TokenNotFound) as missing:
        session.require(email)
    assert email not in str(missing.value) and "not a veil token" in str(missing.value)
    with pytest.raises(TokenNotFound, match=r"\{\{EMAIL_9\}\}"):
        session.require("{{EMAIL_9}}")
    with pytest.raises(ConfigError) as bad_entity:
        session.token_for(email, email)
    assert email not in str(bad_entity.value)
    with pytest.raises(ConfigError) as bad_language:
        session.anonymize("x", language="Marie Tremblay")  # type: ignore[arg-type]
    assert "Marie" not in str(bad_language.value)
    with pytest.raises(ConfigError, match="'de'"):
        session.anonymize("x", language="de")  # type: ignore[arg-type]
