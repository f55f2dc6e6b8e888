"""The `veil` command: outputs, the JSON Lines interface, and clear errors on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from veil.cli import EXIT_ERROR, EXIT_FOUND, EXIT_OK, iter_chunks, main

TICKET = "Écrivez à jean.roy@exemple.ca ou au (514) 555-0199. NAS 130 692 544.\n"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def ticket(tmp_path: Path) -> Path:
    path = tmp_path / "ticket.txt"
    path.write_text(TICKET, encoding="utf-8")
    return path


def test_scan_prints_one_line_per_span_with_offsets_entity_score_and_value(capsys, ticket) -> None:
    code, out, _ = run_cli(capsys, "scan", str(ticket))
    assert code == EXIT_OK
    rows = [line.split("\t") for line in out.splitlines()]
    assert [row[2] for row in rows] == ["EMAIL", "PHONE", "CA_SIN"]
    for start, end, _entity, _score, value in rows:
        assert TICKET[int(start) : int(end)] == value


def test_scan_json_gives_an_array_of_spans(capsys, ticket) -> None:
    code, out, _ = run_cli(capsys, "scan", "--json", str(ticket))
    assert code == EXIT_OK
    assert [s["entity"] for s in json.loads(out)] == ["EMAIL", "PHONE", "CA_SIN"]


def test_anonymize_redacts_and_keeps_the_rest_of_the_text(capsys, ticket) -> None:
    code, out, _ = run_cli(capsys, "anonymize", str(ticket))
    assert code == EXIT_OK
    assert out == "Écrivez à [EMAIL] ou au [PHONE]. NAS [CA_SIN].\n"


def test_entities_option_restricts_what_is_reported(capsys, ticket) -> None:
    _, out, _ = run_cli(capsys, "anonymize", "--entities", "email", str(ticket))
    assert out == "Écrivez à [EMAIL] ou au (514) 555-0199. NAS 130 692 544.\n"


def test_unknown_entity_name_is_an_error_naming_the_option(capsys, ticket) -> None:
    code, out, err = run_cli(capsys, "scan", "--entities", "EMAIL,SOCIAL", str(ticket))
    assert code == EXIT_ERROR
    assert out == ""
    assert "--entities" in err and "SOCIAL" in err


def test_jsonl_scan_writes_one_line_per_input_line_with_ids(capsys, tmp_path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"id": "a", "text": "mail: a@b.ca", "language": "en"})
        + "\n\n"
        + json.dumps({"id": 7, "text": "rien ici"})
        + "\n",
        encoding="utf-8",
    )
    code, out, _ = run_cli(capsys, "scan", "--jsonl", str(source))
    assert code == EXIT_OK
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines == [
        {"id": "a", "spans": [{"start": 6, "end": 12, "entity": "EMAIL", "score": 0.95}]},
        {"id": 7, "spans": []},
    ]


def test_malformed_jsonl_line_is_named_and_nothing_is_written(capsys, tmp_path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "a@b.ca"}\n{"id": 2, "text": \n', encoding="utf-8")
    target = tmp_path / "out.jsonl"
    code, out, err = run_cli(capsys, "scan", "--jsonl", str(source), "-o", str(target))
    assert code == EXIT_ERROR
    assert "line 2" in err
    assert out == ""
    assert not target.exists()
    assert os.listdir(tmp_path) == ["in.jsonl"]  # no temporary file left behind


def test_jsonl_line_without_text_is_an_error(capsys, tmp_path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "body": "a@b.ca"}\n', encoding="utf-8")
    code, _, err = run_cli(capsys, "scan", "--jsonl", str(source))
    assert code == EXIT_ERROR
    assert "line 1" in err and '"text"' in err


def test_non_utf8_input_is_refused_with_the_byte_offset(capsys, tmp_path) -> None:
    source = tmp_path / "latin1.txt"
    source.write_bytes("Numéro: 514-555-0199".encode("latin-1"))
    code, out, err = run_cli(capsys, "anonymize", str(source))
    assert code == EXIT_ERROR
    assert out == ""
    assert "not UTF-8" in err and "offset 3" in err
    assert "514" not in err  # the error never echoes the text


def test_empty_input_is_an_error(capsys, tmp_path) -> None:
    source = tmp_path / "empty.txt"
    source.write_text("  \n", encoding="utf-8")
    code, _, err = run_cli(capsys, "scan", str(source))
    assert code == EXIT_ERROR
    assert "empty" in err


def test_missing_file_is_an_error(capsys, tmp_path) -> None:
    code, _, err = run_cli(capsys, "scan", str(tmp_path / "nope.txt"))
    assert code == EXIT_ERROR
    assert "no such file" in err


def test_invalid_user_pattern_in_config_is_an_error_naming_it(capsys, tmp_path, ticket) -> None:
    config = tmp_path / "veil.toml"
    config.write_text(
        '[policy]\n[[policy.patterns]]\nname = "bad"\nentity = "BAD"\npattern = "(a+)+$"\n', encoding="utf-8"
    )
    code, _, err = run_cli(capsys, "scan", "--config", str(config), str(ticket))
    assert code == EXIT_ERROR
    assert "policy.patterns[0] (bad)" in err


def test_fail_on_pii_sets_the_exit_status(capsys, ticket, tmp_path) -> None:
    assert run_cli(capsys, "scan", "--fail-on-pii", str(ticket))[0] == EXIT_FOUND
    clean = tmp_path / "clean.txt"
    clean.write_text("Nothing to see.", encoding="utf-8")
    assert run_cli(capsys, "scan", "--fail-on-pii", str(clean))[0] == EXIT_OK


def test_output_file_is_written_whole(capsys, ticket, tmp_path) -> None:
    target = tmp_path / "out.txt"
    code, out, _ = run_cli(capsys, "anonymize", str(ticket), "-o", str(target))
    assert code == EXIT_OK and out == ""
    assert target.read_text(encoding="utf-8").startswith("Écrivez à [EMAIL]")


def test_long_inputs_are_cut_at_line_ends_and_offsets_stay_global(capsys, tmp_path) -> None:
    line = "Order 48213 shipped. Contact: jean.roy@exemple.ca\n"
    source = tmp_path / "long.txt"
    source.write_text(line * 60_000, encoding="utf-8")  # ~3 MB, several chunks
    code, out, _ = run_cli(capsys, "scan", str(source))
    assert code == EXIT_OK
    rows = out.splitlines()
    assert len(rows) == 60_000
    last = rows[-1].split("\t")
    assert int(last[0]) == 59_999 * len(line) + line.index("jean")


def test_chunks_cover_the_text_exactly_and_end_at_newlines() -> None:
    text = "".join(f"line {i}\n" for i in range(1000))
    chunks = list(iter_chunks(text, size=100))
    assert "".join(piece for _, piece in chunks) == text
    assert all(piece.endswith("\n") for _, piece in chunks)
    assert all(text[offset : offset + len(piece)] == piece for offset, piece in chunks)


def test_eval_prints_per_entity_scores(capsys, tmp_path) -> None:
    gold = tmp_path / "gold.jsonl"
    text = "Write to a@b.ca or call (514) 555-0199."
    gold.write_text(
        json.dumps(
            {
                "id": 1,
                "text": text,
                "language": "en",
                "spans": [
                    {"start": 9, "end": 15, "entity": "EMAIL"},
                    {"start": 24, "end": 38, "entity": "PHONE"},
                ],
            }
        )
        + "\n",
        encoding="utf-8",
    )
    code, out, _ = run_cli(capsys, "eval", "--data", str(gold))
    assert code == EXIT_OK
    assert "EMAIL" in out and "PHONE" in out
    micro = next(line for line in out.splitlines() if line.startswith("micro "))
    assert micro.split()[1:5] == ["2", "1.000", "1.000", "1.000"]


def test_the_installed_command_reads_standard_input() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "veil.cli", "anonymize", "-"],
        input="mail a@b.ca\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout == "mail [EMAIL]\n"


# -- reversible anonymization with the vault ---------------------------------------------------------


def test_reversible_anonymize_then_restore_through_the_vault(capsys, tmp_path, ticket) -> None:
    vault = str(tmp_path / "vault")
    code, out, _ = run_cli(capsys, "anonymize", "--scope", "c1", "--vault", vault, str(ticket))
    assert code == EXIT_OK
    assert out == "Écrivez à {{EMAIL_1}} ou au {{PHONE_1}}. NAS {{CA_SIN_1}}.\n"
    anonymized = tmp_path / "anonymized.txt"
    anonymized.write_text(out, encoding="utf-8")
    code, out, _ = run_cli(capsys, "restore", "--scope", "c1", "--vault", vault, str(anonymized))
    assert (code, out) == (EXIT_OK, TICKET)
    assert (tmp_path / "vault" / "vault.db").stat().st_mode & 0o777 == 0o600


def test_restore_of_an_unknown_token_fails_unless_lenient(capsys, tmp_path) -> None:
    vault = str(tmp_path / "vault")
    assert run_cli(capsys, "keys", "init", "--vault", vault)[0] == EXIT_OK
    source = tmp_path / "answer.txt"
    source.write_text("Mail {{EMAIL_4}}", encoding="utf-8")
    code, out, err = run_cli(capsys, "restore", "--scope", "c1", "--vault", vault, str(source))
    assert code == EXIT_ERROR
    assert out == ""
    assert "{{EMAIL_4}}" in err
    code, out, err = run_cli(capsys, "restore", "--scope", "c1", "--vault", vault, "--lenient", str(source))
    assert (code, out) == (EXIT_OK, "Mail {{EMAIL_4}}")
    assert '"invented": ["{{EMAIL_4}}"]' in err


def test_restore_without_a_vault_says_how_to_create_one(capsys, tmp_path, ticket) -> None:
    code, _, err = run_cli(capsys, "restore", "--scope", "c1", "--vault", str(tmp_path / "none"), str(ticket))
    assert code == EXIT_ERROR
    assert "veil keys init" in err


def test_keys_rotate_status_audit_verify_and_erase(capsys, tmp_path, ticket) -> None:
    vault = str(tmp_path / "vault")
    run_cli(capsys, "anonymize", "--scope", "c1", "--subject", "client-9", "--vault", vault, str(ticket))
    code, out, _ = run_cli(capsys, "keys", "rotate", "--vault", vault, "--actor", "ops")
    assert code == EXIT_OK
    assert "local/v2" in out
    code, out, _ = run_cli(capsys, "keys", "status", "--vault", vault)
    assert "current key: local/v2" in out
    code, out, _ = run_cli(capsys, "vault", "erase", "--subject", "client-9", "--vault", vault)
    assert (code, out) == (EXIT_OK, "erased 3 mapping(s) of the subject\n")
    code, out, _ = run_cli(capsys, "audit", "verify", "--vault", vault)
    assert code == EXIT_OK
    assert "audit log intact: 3 record(s)" in out  # tokenize, rotate, erase


def test_a_tampered_audit_log_fails_verification(capsys, tmp_path, ticket) -> None:
    import sqlite3

    vault = tmp_path / "vault"
    run_cli(capsys, "anonymize", "--scope", "c1", "--vault", str(vault), str(ticket))
    run_cli(capsys, "vault", "erase", "--scope", "c1", "--vault", str(vault))
    with sqlite3.connect(vault / "audit.db") as db:
        db.execute("UPDATE veil_audit SET actor = 'someone-else' WHERE seq = 1")
    code, _, err = run_cli(capsys, "audit", "verify", "--vault", str(vault))
    assert code == 1
    assert "record 1" in err
