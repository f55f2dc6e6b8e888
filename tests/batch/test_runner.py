"""Batch runs over files and folders: the same output whatever the number of workers, one token
per value, malformed rows reported by line, crashed workers and interrupted runs recovered."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from batch_corpora import RULES, options, read_tree, write_csv, write_jsonl
from hypothesis import given, settings
from hypothesis import strategies as st

from veil.batch import BatchRun, ShardDone, find_inputs, plan, run
from veil.batch.report import ProgressBar
from veil.batch.shards import _cut
from veil.errors import ConfigError, InputError
from veil.session import Veil

SMALL = 2048  # bytes per shard: many shards from a small corpus


def veil_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "veil.cli", *args], capture_output=True, text=True, timeout=300, check=False
    )


# -- shards -------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    fields=st.lists(st.lists(st.text(alphabet='ab"\n,é', max_size=8), min_size=2, max_size=2), max_size=30),
    shard_bytes=st.integers(1, 80),
    trailing_newline=st.booleans(),
)
def test_csv_shards_cover_the_file_and_cut_only_between_records(
    tmp_path_factory: pytest.TempPathFactory, fields: list[list[str]], shard_bytes: int, trailing_newline: bool
) -> None:
    import csv

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(fields)
    data = buffer.getvalue().encode()
    if not trailing_newline:
        data = data.rstrip(b"\n")
    path = tmp_path_factory.mktemp("cut") / "f.csv"
    path.write_bytes(data)
    shards = list(_cut(str(path), 0, shard_bytes, quoted=True))
    position = 0
    rows = []
    for start, end, first_line in shards:
        assert start == position and end > start
        assert first_line == 1 + data[:start].count(b"\n")
        rows += list(csv.reader(io.StringIO(data[start:end].decode(), newline="")))
        position = end
    assert position == len(data)
    assert rows == list(csv.reader(io.StringIO(data.decode(), newline="")))


def test_the_plan_does_not_depend_on_the_workers(corpus: Path) -> None:
    files = find_inputs([corpus])
    assert [f.name for f in files] == ["a.jsonl", "b.jsonl", "more/notes.txt"]
    shards = plan(files, SMALL)
    assert len(shards) > 10
    assert [s.index for s in shards] == list(range(len(shards)))


# -- same output, one token per value -----------------------------------------------------------


def test_two_workers_write_byte_for_byte_what_one_writes(corpus: Path, tmp_path: Path) -> None:
    one = run([corpus], tmp_path / "one", options(), jobs=1, shard_bytes=SMALL, progress=False)
    two = run([corpus], tmp_path / "two", options(), jobs=2, shard_bytes=SMALL, progress=False)
    assert read_tree(tmp_path / "one") == read_tree(tmp_path / "two")
    assert one.documents == two.documents == 300 + 120 + len(plan(find_inputs([corpus / "more"]), SMALL))
    assert one.entities == two.entities and one.entities["EMAIL"] == 300 + 120 + 200
    out = (tmp_path / "two" / "a.jsonl").read_text(encoding="utf-8")
    assert "@exemple.ca" not in out and "[EMAIL]" in out
    assert json.loads(out.splitlines()[0])["language"] == "en"  # other fields kept


def test_workers_sharing_a_vault_give_each_value_one_token(corpus: Path, tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    Veil.open(vault).close()
    reversible = options(scope="corpus", vault=str(vault))
    run([corpus], tmp_path / "two", reversible, jobs=2, shard_bytes=SMALL, progress=False)
    veil = Veil.open(vault)
    session = veil.session("corpus")
    mapping = session.mapping()
    emails = {t: v for t, v in mapping.items() if t.startswith("{{EMAIL_")}
    assert len(emails) == len(set(emails.values())) == 40  # one token per value, never a value twice
    original = (corpus / "a.jsonl").read_text(encoding="utf-8").splitlines()
    for line, source in zip((tmp_path / "two" / "a.jsonl").read_text(encoding="utf-8").splitlines(), original,
                            strict=True):  # fmt: skip
        assert session.restore(json.loads(line)["text"]) == json.loads(source)["text"]
    veil.close()
    # A second run on the same scope finds every value's token: the same bytes, no new mapping.
    run([corpus], tmp_path / "one", reversible, jobs=1, shard_bytes=SMALL, progress=False)
    assert read_tree(tmp_path / "one") == read_tree(tmp_path / "two")
    veil = Veil.open(vault)
    assert len(veil.session("corpus").mapping()) == len(mapping)
    veil.close()


def test_csv_columns_are_anonymized_and_the_rest_kept(tmp_path: Path) -> None:
    write_csv(tmp_path / "t.csv", 200)
    run([tmp_path / "t.csv"], tmp_path / "one", options(columns=("body",)), jobs=1, shard_bytes=SMALL, progress=False)
    run([tmp_path / "t.csv"], tmp_path / "two", options(columns=("body",)), jobs=2, shard_bytes=SMALL, progress=False)
    assert read_tree(tmp_path / "one") == read_tree(tmp_path / "two")
    import csv

    with open(tmp_path / "one" / "t.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["id", "body", "note"] and len(rows) == 201
    assert rows[5][2] == "note 4" and "[EMAIL]" in rows[5][1] and "\n" in rows[5][1]
    with pytest.raises(ConfigError, match=r"no column text \(its columns: id, body, note\)"):
        run([tmp_path / "t.csv"], tmp_path / "three", options(), progress=False)


def test_a_csv_language_column_is_not_taken_for_text(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(
        "id,language,body\n1,fr,Mon code postal est H2X 1Y4\n2,en,My postcode is H2X 1Y4\n", encoding="utf-8"
    )
    summary = run([tmp_path / "t.csv"], tmp_path / "spans.jsonl", options(action="scan", columns=("body",),
                  language="auto"), progress=False)  # fmt: skip
    assert summary.documents == 2
    lines = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["line"] for line in lines] == [2, 3]
    assert [[s["entity"] for s in line["spans"]["body"]] for line in lines] == [["CA_POSTAL_CODE"]] * 2


def test_a_lone_csv_file_without_batch_options_is_scanned_as_text_as_before(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("id,body\n1,jean@exemple.ca\n", encoding="utf-8")
    result = veil_cli("scan", str(tmp_path / "t.csv"), "--ner", "off")
    assert result.returncode == 0 and "EMAIL" in result.stdout and "jean@exemple.ca" in result.stdout


def test_parquet_columns_are_anonymized_nulls_and_schema_kept(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    texts = write_jsonl(tmp_path / "x.jsonl", 900)
    table = pa.table({
        "id": pa.array(range(900), type=pa.int32()),
        "text": pa.array([None if i % 9 == 0 else t for i, t in enumerate(texts)], type=pa.large_string()),
    })  # fmt: skip
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=100)
    target = tmp_path / "in"
    target.mkdir()
    (tmp_path / "t.parquet").rename(target / "t.parquet")
    run([target], tmp_path / "one", options(), jobs=1, shard_bytes=SMALL, progress=False)
    summary = run([target], tmp_path / "two", options(), jobs=2, shard_bytes=SMALL, progress=False)
    assert summary.shards > 1
    one = pq.read_table(tmp_path / "one" / "t.parquet")
    assert one.equals(pq.read_table(tmp_path / "two" / "t.parquet"))
    assert one.schema == table.schema and one.column("id").equals(table.column("id"))
    values = one.column("text").to_pylist()
    assert values[0] is None and values[9] is None
    assert all("[EMAIL]" in v and "@" not in v for v in values if v is not None)


# -- bad input ----------------------------------------------------------------------------------


def _with_bad_rows(root: Path) -> None:
    root.mkdir()
    write_jsonl(root / "a.jsonl", 50)
    with open(root / "a.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"id": 50, "text": "jean@exemple.ca"\n')  # line 51: not JSON
        handle.write('{"id": 51, "text": 130692544}\n')  # line 52: a number where text is expected
        handle.write('{"id": 52, "text": "ok marie@exemple.ca"}\n')
    with open(root / "a.jsonl", "ab") as handle:
        handle.write(b'{"id": 53, "text": "caf\xe9"}\n')  # line 54: Latin-1, not UTF-8


def test_a_malformed_row_stops_the_run_with_its_line_number(tmp_path: Path) -> None:
    _with_bad_rows(tmp_path / "in")
    with pytest.raises(InputError, match=r"a\.jsonl, line 51: not valid JSON") as error:
        run([tmp_path / "in"], tmp_path / "out", options(), jobs=1, progress=False)
    assert "jean" not in str(error.value)  # the row's content never appears in a message
    assert not (tmp_path / "out" / "a.jsonl").exists()


def test_malformed_rows_are_skipped_counted_and_never_copied_through(tmp_path: Path) -> None:
    _with_bad_rows(tmp_path / "in")
    summary = run([tmp_path / "in"], tmp_path / "out", options(on_error="skip"), jobs=2, progress=False)
    assert summary.malformed == 3 and summary.documents == 51
    assert summary.errors == [
        "a.jsonl, line 51: not valid JSON (Expecting ',' delimiter at column 37)",
        'a.jsonl, line 52: field "text" must be a string, got int',
        "a.jsonl, line 54: not UTF-8 text (invalid byte at column 24)",
    ]
    out = (tmp_path / "out" / "a.jsonl").read_text(encoding="utf-8")
    assert len(out.splitlines()) == 51 and "130692544" not in out and "jean@" not in out
    recorded = json.loads((tmp_path / "out" / ".veil-batch" / "summary.json").read_text(encoding="utf-8"))
    assert recorded["malformed"] == 3 and recorded["errors"] == summary.errors


def test_a_run_stopped_by_a_malformed_row_resumes_with_skip(tmp_path: Path) -> None:
    _with_bad_rows(tmp_path / "in")
    with pytest.raises(InputError):
        run([tmp_path / "in"], tmp_path / "out", options(), jobs=1, progress=False)
    summary = run([tmp_path / "in"], tmp_path / "out", options(on_error="skip"), jobs=1, progress=False)
    assert summary.malformed == 3


def test_csv_rows_with_the_wrong_number_of_fields_are_reported_by_line(tmp_path: Path) -> None:
    write_csv(tmp_path / "t.csv", 10)  # 10 records over 20 lines after the header
    with open(tmp_path / "t.csv", "a", encoding="utf-8") as handle:
        handle.write("11,only two\n")
    with pytest.raises(InputError, match=r"t\.csv, line 22: expected 3 fields, got 2"):
        run([tmp_path / "t.csv"], tmp_path / "out", options(columns=("body",)), jobs=1, progress=False)


def test_the_output_may_not_be_inside_the_input(corpus: Path) -> None:
    with pytest.raises(ConfigError, match="inside the input"):
        BatchRun([corpus], corpus / "out", options())


def test_a_file_of_unknown_format_is_refused(corpus: Path, tmp_path: Path) -> None:
    (corpus / "data.bin").write_bytes(b"\x00")
    with pytest.raises(InputError, match=r"data\.bin: cannot tell its format"):
        run([corpus], tmp_path / "out", options(), progress=False)


# -- crashes and interruptions ------------------------------------------------------------------


def test_a_crashed_worker_s_shards_are_run_again_without_loss_or_duplicate(corpus: Path, tmp_path: Path) -> None:
    reference = run([corpus], tmp_path / "reference", options(), jobs=1, shard_bytes=SMALL, progress=False)
    killed: list[int] = []

    def kill_a_worker(done: ShardDone) -> None:
        if not killed:
            worker = multiprocessing.active_children()[0]
            killed.append(worker.pid or 0)
            os.kill(worker.pid or 0, signal.SIGKILL)

    summary = run([corpus], tmp_path / "out", options(), jobs=2, shard_bytes=SMALL, progress=False,
                  on_shard=kill_a_worker)  # fmt: skip
    assert killed and summary.crashes == 1
    assert summary.documents == reference.documents and summary.entities == reference.entities
    assert read_tree(tmp_path / "out") == read_tree(tmp_path / "reference")


def test_an_interrupted_run_resumes_to_the_output_of_an_uninterrupted_one(corpus: Path, tmp_path: Path) -> None:
    for name in ("v1", "v2"):
        Veil.open(tmp_path / name).close()
    run([corpus], tmp_path / "reference", options(scope="c", vault=str(tmp_path / "v1")), jobs=1, shard_bytes=SMALL,
        progress=False)  # fmt: skip

    def interrupt(done: ShardDone) -> None:
        if done.index == 3:
            raise KeyboardInterrupt

    resumable = options(scope="c", vault=str(tmp_path / "v2"))
    with pytest.raises(KeyboardInterrupt):
        run([corpus], tmp_path / "out", resumable, jobs=1, shard_bytes=SMALL, progress=False, on_shard=interrupt)
    assert not (tmp_path / "out" / "a.jsonl").exists()
    summary = run([corpus], tmp_path / "out", resumable, jobs=1, shard_bytes=SMALL, progress=False)
    assert summary.shards_resumed == 4
    assert read_tree(tmp_path / "out") == read_tree(tmp_path / "reference")
    veils = [Veil.open(tmp_path / name) for name in ("v1", "v2")]
    assert veils[0].session("c").mapping() == veils[1].session("c").mapping()  # no value tokenized twice
    for veil in veils:
        veil.close()
    again = run([corpus], tmp_path / "out", resumable, jobs=1, shard_bytes=SMALL, progress=False)
    assert again.shards_resumed == again.shards  # already complete: nothing redone


def test_a_changed_input_makes_the_checkpoint_stale(corpus: Path, tmp_path: Path) -> None:
    def interrupt(done: ShardDone) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run([corpus], tmp_path / "out", options(), jobs=1, shard_bytes=SMALL, progress=False, on_shard=interrupt)
    write_jsonl(corpus / "b.jsonl", 121)
    with pytest.raises(ConfigError, match="--restart"):
        run([corpus], tmp_path / "out", options(), jobs=1, shard_bytes=SMALL, progress=False)
    run([corpus], tmp_path / "out", options(), jobs=1, shard_bytes=SMALL, progress=False, restart=True)


def test_the_cli_killed_mid_run_resumes_to_the_same_output(corpus: Path, tmp_path: Path) -> None:
    command = ["anonymize", str(corpus), "--ner", "off", "--language", "fr", "-j", "1", "--shard-size", "2K", "-q"]
    assert veil_cli(*command, "-o", str(tmp_path / "reference")).returncode == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "veil.cli", *command, "-o", str(tmp_path / "out")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    done = tmp_path / "out" / ".veil-batch" / "done.jsonl"
    while process.poll() is None and not (done.exists() and done.read_text(encoding="utf-8").count("\n") >= 2):
        pass
    process.send_signal(signal.SIGKILL)
    process.wait()
    result = veil_cli(*command[:-1], "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert read_tree(tmp_path / "out") == read_tree(tmp_path / "reference")


# -- the command --------------------------------------------------------------------------------


def test_cli_scan_writes_one_line_per_document_and_a_summary(corpus: Path, tmp_path: Path) -> None:
    result = veil_cli("scan", str(corpus), "-o", str(tmp_path / "spans.jsonl"), "--ner", "off", "-j", "2")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 300 + 120 + 1
    assert lines[0]["source"] == "a.jsonl" and lines[0]["line"] == 1 and lines[0]["id"] == 0
    assert {s["entity"] for s in lines[0]["spans"]["text"]} >= {"EMAIL", "CA_SIN"}
    assert lines[-1]["source"] == "more/notes.txt"
    assert "421 document(s) in 3 file(s)" in result.stderr and "EMAIL 620" in result.stderr
    assert "\r" not in result.stderr  # not a terminal: no progress bar
    assert "@" not in result.stderr  # counts, never values


def test_cli_quiet_prints_nothing_and_batch_needs_an_output(corpus: Path, tmp_path: Path) -> None:
    result = veil_cli("anonymize", str(corpus), "-o", str(tmp_path / "out"), "--ner", "off", "-q")
    assert result.returncode == 0 and result.stderr == ""
    result = veil_cli("anonymize", str(corpus))
    assert result.returncode == 2 and "give -o/--output" in result.stderr


def test_progress_bar_shows_rate_and_eta_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    bar = ProgressBar("anonymizing", 1000, stream=stream)
    bar.advance(250, 40)
    bar.close()
    shown = stream.getvalue()
    assert shown.startswith("\ranonymizing [#######") and " 25.0%" in shown
    assert "40 docs" in shown and "docs/s" in shown and "MB/s" in shown and "ETA " in shown
    silent = io.StringIO()
    ProgressBar("anonymizing", 1000, stream=silent).advance(1, 1)
    assert silent.getvalue() == ""


def test_import_veil_and_its_cli_load_no_pyarrow_nor_ray() -> None:
    heavy = "{'pyarrow', 'ray', 'numpy', 'pandas'}"
    code = f"import sys, veil, veil.cli, veil.batch; print(sorted({heavy} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_rules_policy_is_what_the_workers_use() -> None:
    assert options().policy is RULES
