"""veil.batch.ray against a real local Ray runtime (two CPUs, two actors): the same tokens and
bytes as the single-process run, one token per value across actors, scan spans alike.

Run by tests/batch/test_ray.py in a pytest process of its own: Ray's runtime (its core worker
and gRPC threads) then never shares a process with the rest of the suite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from batch_corpora import RULES, options, write_jsonl

from veil.batch import run
from veil.errors import ConfigError
from veil.session import Veil

ray = pytest.importorskip("ray")
from veil.batch.ray import anonymize_dataset, scan_dataset  # noqa: E402


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    for attempt in (1, 2):  # on a loaded machine the raylet may miss Ray's fixed 30 s start-up wait
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def _rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _lines(rows: list[dict[str, object]]) -> list[str]:
    """Rows as the single-process run writes them, in id order: byte-comparable."""
    return [json.dumps(row, ensure_ascii=False) for row in sorted(rows, key=lambda r: int(r["id"]))]  # type: ignore[call-overload]


def test_ray_gives_the_single_process_bytes_and_one_token_per_value(local_ray: None, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write_jsonl(tmp_path / "in" / "a.jsonl", 400)
    vault = tmp_path / "vault"
    Veil.open(vault).close()
    # Ray first, on a fresh scope: two actors race to create the tokens.
    source = _rows(tmp_path / "in" / "a.jsonl")
    ds = ray.data.from_items(source, override_num_blocks=8)
    anonymized = anonymize_dataset(ds, columns=["text"], scope="corpus", vault=str(vault), policy=RULES,
                                   language="fr", concurrency=2, batch_size=32).take_all()  # fmt: skip
    veil = Veil.open(vault)
    mapping = veil.session("corpus").mapping()
    veil.close()
    emails = [value for token, value in mapping.items() if token.startswith("{{EMAIL_")]
    assert len(emails) == len(set(emails)) == 40
    # Then the single-process run on the same scope: every value already has its token.
    run([tmp_path / "in"], tmp_path / "out", options(scope="corpus", vault=str(vault)), jobs=1, progress=False)
    assert _lines(anonymized) == (tmp_path / "out" / "a.jsonl").read_text(encoding="utf-8").splitlines()
    veil = Veil.open(vault)
    assert veil.session("corpus").mapping() == mapping  # the second run issued no token
    veil.close()


def test_ray_redaction_and_scan_match_the_single_process_run(local_ray: None, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write_jsonl(tmp_path / "in" / "a.jsonl", 120, seed=5)
    source = _rows(tmp_path / "in" / "a.jsonl")
    ds = ray.data.from_items(source, override_num_blocks=4)
    redacted = anonymize_dataset(ds, columns=["text"], policy=RULES, language="fr", concurrency=2).take_all()
    run([tmp_path / "in"], tmp_path / "out", options(), jobs=1, progress=False)
    assert _lines(redacted) == (tmp_path / "out" / "a.jsonl").read_text(encoding="utf-8").splitlines()

    scanned = scan_dataset(ds, columns=["text"], policy=RULES, language="fr", concurrency=2).take_all()
    run([tmp_path / "in"], tmp_path / "spans.jsonl", options(action="scan"), jobs=1, progress=False)
    expected = {row["id"]: row["spans"]["text"] for row in _rows(tmp_path / "spans.jsonl")}
    assert {row["id"]: row["text_spans"] for row in scanned} == expected


def test_a_missing_column_is_refused_before_any_work(local_ray: None) -> None:
    ds = ray.data.from_items([{"id": 1, "body": "jean@exemple.ca"}])
    with pytest.raises(ConfigError, match=r"no column text \(its columns: id, body\)"):
        anonymize_dataset(ds, columns=["text"], policy=RULES)
