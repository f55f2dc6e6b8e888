"""The `veil` command: scan, anonymize and evaluate from a shell.

    veil scan FILE|-                    print the PII spans of a text
    veil scan --jsonl FILE|-            one JSON line out per JSON line in (the batch and eval interface)
    veil anonymize FILE|-               print the text with PII redacted ([EMAIL] …)
    veil anonymize --scope S FILE|-     reversible: tokens ({{EMAIL_1}}) kept in the vault
    veil restore --scope S FILE|-       tokens back to values
    veil keys init|status|rotate|generate
    veil keys create|list|revoke        the gateway's API keys (distribution veil-server)
    veil audit verify                   check the audit log's chain
    veil vault erase --scope S | --subject ID
    veil anonymize DIR|FILE... -o OUT/  batch: folders, JSON Lines, CSV, Parquet, text, on every core
    veil scan DIR|FILE... -o SPANS.jsonl   (--jobs, --columns, --format, --on-error; see docs/batch.md)
    veil eval --data GOLD.jsonl         precision / recall / F1 per entity against gold data
    veil doctor                         which detectors, models, languages and extras are active
    veil serve [--config veil.toml]     the OpenAI-compatible gateway (distribution veil-server)

The vault lives in --vault DIR (default: $VEIL_HOME, else .veil): vault.db, audit.db, keys.json.

Errors (bad options, unreadable input, malformed lines) print one line naming the option or
the line, exit with status 2, and leave no partial output: results are written only once the
whole input has been read and checked, and `--output` files are replaced atomically.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from veil import __version__
from veil.detect.engine import Engine
from veil.detect.policy import MODES, NER_MODES, Policy
from veil.entities import LANGUAGES, Span
from veil.errors import ConfigError, InputError, VeilError
from veil.tokens import redact

EXIT_OK = 0
EXIT_FOUND = 3  # with --fail-on-pii
EXIT_ERROR = 2

# Long texts are scanned in pieces cut at line ends, so memory and the progress bar stay sane.
_CHUNK_CHARS = 1 << 20
_PROGRESS_MIN_CHARS = 4 << 20


def read_text(source: str, stdin: IO[bytes] | None = None) -> str:
    """Read a file (or `-` for stdin) as UTF-8; a BOM is dropped; anything else is an error."""
    name = "standard input" if source == "-" else source
    try:
        data = (stdin or sys.stdin.buffer).read() if source == "-" else Path(source).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory, not a file") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot be read ({exc.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name}: not UTF-8 text (invalid byte at offset {exc.start}); convert it first, "
            "for example with: iconv -f latin1 -t utf-8"
        ) from None


def iter_chunks(text: str, size: int = _CHUNK_CHARS) -> Iterator[tuple[int, str]]:
    """(offset, piece) pairs covering `text`, each piece ending at a line end where possible."""
    position = 0
    while position < len(text):
        end = min(len(text), position + size)
        if end < len(text):
            newline = text.rfind("\n", position, end)
            if newline > position:
                end = newline + 1
        yield position, text[position:end]
        position = end


class Progress:
    """A one-line progress bar on stderr, shown only on a terminal and for long inputs."""

    def __init__(self, total: int, label: str, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total = total
        self.label = label
        self.enabled = total >= _PROGRESS_MIN_CHARS and self.stream.isatty()
        self.started = time.perf_counter()

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = done / elapsed
        eta = (self.total - done) / rate if rate else 0.0
        width = 30
        filled = int(width * done / self.total)
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {100 * done / self.total:5.1f}% "
            f"{rate / 1e6:6.2f} M chars/s, {eta:5.0f} s left"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def detect_long(engine: Engine, text: str, language: str | None, label: str) -> list[Span]:
    """Detect over a text of any length, piece by piece, offsets relative to the whole text."""
    progress = Progress(len(text), label)
    spans: list[Span] = []
    for offset, piece in iter_chunks(text):
        for span in engine.detect(piece, language):  # type: ignore[arg-type]
            spans.append(Span(span.start + offset, span.end + offset, span.entity, span.score, span.source))
        progress.update(offset + len(piece))
    progress.close()
    return spans


def _span_record(span: Span) -> dict[str, Any]:
    return {"start": span.start, "end": span.end, "entity": span.entity, "score": round(span.score, 4)}


def _read_jsonl(text: str, name: str, default_language: str | None) -> list[tuple[Any, str, str | None]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{name}, line {number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise InputError(f'{name}, line {number}: expected an object with a string "text"')
        language = row.get("language") or default_language
        if language not in (*LANGUAGES, "auto", None):
            raise InputError(f"{name}, line {number}: language must be en, fr or auto, got {language!r}")
        rows.append((row.get("id", number), row["text"], language))
    if not rows:
        raise InputError(f"{name}: no JSON lines to process")
    return rows


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    """Standard output, or a file replaced atomically once everything has been written."""
    if path is None or path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(path)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, then renamed into place
        "w", encoding="utf-8", dir=target.parent or Path("."), prefix=f".{target.name}.", delete=False
    )
    try:
        with handle:
            yield handle
        os.replace(handle.name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.name)
        raise


def _engine(args: argparse.Namespace) -> Engine:
    return Engine(_policy(args), language=args.language)


def _policy(args: argparse.Namespace) -> Policy:
    policy = Policy.from_toml(args.config) if args.config else Policy()
    changes: dict[str, Any] = {}
    if args.mode:
        changes["mode"] = args.mode
    if args.entities:
        changes["entities"] = frozenset(name.strip().upper() for name in args.entities.split(",") if name.strip())
    if args.exclude:
        changes["exclude"] = frozenset(name.strip().upper() for name in args.exclude.split(",") if name.strip())
    if getattr(args, "ner", None):
        changes["ner"] = args.ner
    try:
        policy = policy.with_changes(**changes) if changes else policy
    except ConfigError as exc:
        raise ConfigError(
            str(exc).replace("policy.entities", "--entities").replace("policy.exclude", "--exclude")
        ) from None
    return policy


def _batch_or_single(args: argparse.Namespace, action: str) -> int | None:
    """Run a batch (folders, several files, CSV, Parquet, --jobs …) and return its status, or
    leave `args.input` as the single text file or stream to process and return None."""
    from veil.batch.cli import run_batch, wants_batch  # noqa: PLC0415

    if wants_batch(args):
        return run_batch(args, action, _policy(args))
    args.input = args.input[0]
    return None


def _language_arg(args: argparse.Namespace) -> str | None:
    return None if args.language == "auto" else args.language


def _jsonl(args: argparse.Namespace, text: str, name: str, row: Any) -> int:
    """Process JSON Lines: `row(rows) -> [(output record, number of values found)]`, where each
    row is `(id, text, language)`. Every line is read and processed before anything is written."""
    results = []
    found = 0
    for record, count in row(list(_read_jsonl(text, name, _language_arg(args)))):
        results.append(record)
        found += count
    with _output(args.output) as out:
        for record in results:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return found


_BATCH = 64


def _detect_rows(engine: Engine, rows: list[tuple[Any, str, Any]]) -> list[list[Span]]:
    """Spans of each row, rows of one language detected together (NER reads them in batches)."""
    results: list[list[Span]] = [[] for _ in rows]
    by_language: dict[Any, list[int]] = {}
    for index, (_, _, language) in enumerate(rows):
        by_language.setdefault(language, []).append(index)
    for language, indices in by_language.items():
        for first in range(0, len(indices), _BATCH):
            chunk = indices[first : first + _BATCH]
            for index, spans in zip(chunk, engine.detect_many([rows[i][1] for i in chunk], language), strict=True):
                results[index] = spans
    return results


def cmd_scan(args: argparse.Namespace) -> int:
    if (status := _batch_or_single(args, "scan")) is not None:
        return status
    engine = _engine(args)
    text = read_text(args.input)
    name = "standard input" if args.input == "-" else args.input
    found = 0
    if args.jsonl:

        def row(rows: list[tuple[Any, str, Any]]) -> list[tuple[dict[str, Any], int]]:
            found = _detect_rows(engine, rows)
            return [
                ({"id": row_id, "spans": [_span_record(s) for s in spans]}, len(spans))
                for (row_id, _, _), spans in zip(rows, found, strict=True)
            ]

        found = _jsonl(args, text, name, row)
    else:
        if not text.strip():
            raise InputError(f"{name}: is empty; nothing to scan")
        spans = detect_long(engine, text, _language_arg(args), "scanning")
        found = len(spans)
        with _output(args.output) as out:
            if args.json:
                out.write(
                    json.dumps(
                        [dict(_span_record(s), text=text[s.start : s.end]) for s in spans],
                        ensure_ascii=False,
                        indent=2,
                    )
                    + "\n"
                )
            else:
                for s in spans:
                    value = text[s.start : s.end].replace("\n", "⏎")
                    out.write(f"{s.start}\t{s.end}\t{s.entity}\t{s.score:.2f}\t{value}\n")
    return EXIT_FOUND if args.fail_on_pii and found else EXIT_OK


def _vault_dir(args: argparse.Namespace) -> Path:
    return Path(args.vault or os.environ.get("VEIL_HOME") or ".veil")


def _open_veil(args: argparse.Namespace, *, engine: Engine | None = None, create: bool = True) -> Any:
    from veil.session import Veil  # noqa: PLC0415

    root = _vault_dir(args)
    if not create and not (root / "keys.json").exists():
        raise ConfigError(f"no vault in {root}: create one with `veil keys init --vault {root}`")
    return Veil.open(root, engine=engine, tenant=args.tenant)


def cmd_anonymize(args: argparse.Namespace) -> int:
    if (status := _batch_or_single(args, "anonymize")) is not None:
        return status
    if args.scope:
        return _anonymize_reversibly(args)
    engine = _engine(args)
    text = read_text(args.input)
    name = "standard input" if args.input == "-" else args.input
    found = 0
    if args.jsonl:

        def row(rows: list[tuple[Any, str, Any]]) -> list[tuple[dict[str, Any], int]]:
            found = _detect_rows(engine, rows)
            return [
                ({"id": row_id, "text": redact(text, spans), "spans": [_span_record(s) for s in spans]}, len(spans))
                for (row_id, text, _), spans in zip(rows, found, strict=True)
            ]

        found = _jsonl(args, text, name, row)
    else:
        if not text.strip():
            raise InputError(f"{name}: is empty; nothing to anonymize")
        spans = detect_long(engine, text, _language_arg(args), "anonymizing")
        found = len(spans)
        with _output(args.output) as out:
            out.write(redact(text, spans))
    print(f"veil: {found} span(s) redacted", file=sys.stderr) if args.verbose else None
    return EXIT_FOUND if args.fail_on_pii and found else EXIT_OK


def _anonymize_reversibly(args: argparse.Namespace) -> int:
    veil = _open_veil(args, engine=_engine(args))
    text = read_text(args.input)
    name = "standard input" if args.input == "-" else args.input
    found = 0
    if args.jsonl:

        def row(rows: list[tuple[Any, str, Any]]) -> list[tuple[dict[str, Any], int]]:
            session = veil.session(args.scope, subject=args.subject)
            out = []
            for row_id, text, language in rows:
                sent = session.anonymize(text, language=language)
                out.append(({"id": row_id, "text": sent.text, "tokens": sent.tokens}, sent.pii_count))
            return out

        found = _jsonl(args, text, name, row)
    else:
        if not text.strip():
            raise InputError(f"{name}: is empty; nothing to anonymize")
        session = veil.session(args.scope, subject=args.subject)
        pieces = [session.anonymize(piece, language=_language_arg(args)).text for _, piece in iter_chunks(text)]
        found = len(session.sent_tokens)
        with _output(args.output) as out:
            out.write("".join(pieces))
    if args.verbose:
        print(f"veil: {found} value(s) tokenized in scope {args.scope}", file=sys.stderr)
    veil.close()
    return EXIT_FOUND if args.fail_on_pii and found else EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    veil = _open_veil(args, create=False)
    text = read_text(args.input)
    session = veil.session(args.scope)
    report = session.restore_report(text, lenient=args.lenient)
    with _output(args.output) as out:
        out.write(report.text)
    if not report.drift.clean:
        print(f"veil restore: drift {json.dumps(report.drift.to_dict())}", file=sys.stderr)
    veil.close()
    return EXIT_OK


def cmd_keys(args: argparse.Namespace) -> int:
    if args.action == "generate":
        import base64  # noqa: PLC0415

        print(base64.b64encode(os.urandom(32)).decode())
        return EXIT_OK
    root = _vault_dir(args)
    if args.action == "init":
        existed = (root / "keys.json").exists()
        veil = _open_veil(args)
        veil.keyring.prepare(veil.tenant)
        print(f"{'using the existing' if existed else 'created a'} vault in {root} (key {veil.keys.current()})")
    elif args.action == "rotate":
        veil = _open_veil(args, create=False)
        ref, count = veil.rotate_keys(actor=args.actor)
        print(f"key rotated to {ref}; {count} data key(s) re-wrapped; older versions still unwrap until retired")
    else:
        veil = _open_veil(args, create=False)
        in_use = veil.keyring.kek_versions_in_use()
        print(f"vault: {root}")
        print(f"current key: {veil.keys.current()}")
        for ref in veil.keys.versions():
            print(f"  {ref}: wraps {in_use.get(ref, 0)} data key(s)")
    veil.close()
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    veil = _open_veil(args, create=False)
    expected = None
    if args.head:
        seq, _, mac = args.head.partition(":")
        if not seq.isdigit() or not mac:
            raise ConfigError("--head takes SEQ:MAC, as printed by a previous `veil audit verify`")
        expected = (int(seq), mac)
    result = veil.audit.verify(expected_head=expected)
    veil.close()
    if result.ok:
        print(f"audit log intact: {result.count} record(s); head {result.head_seq}:{result.head_mac}")
        return EXIT_OK
    print(f"audit log BROKEN ({len(result.problems)} problem(s)):", file=sys.stderr)
    for problem in result.problems:
        print(f"  {problem}", file=sys.stderr)
    return 1


def cmd_vault(args: argparse.Namespace) -> int:
    veil = _open_veil(args, create=False)
    if bool(args.scope) == bool(args.subject):
        raise ConfigError("veil vault erase takes exactly one of --scope or --subject")
    if args.scope:
        count = veil.erase_scope(args.scope, actor=args.actor)
        print(f"erased {count} mapping(s) of scope {args.scope}")
    else:
        count = veil.erase_subject(args.subject, actor=args.actor)
        print(f"erased {count} mapping(s) of the subject")
    veil.close()
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from veil.evaluation import evaluate, format_report, iter_predictions, read_gold  # noqa: PLC0415

    engine = _engine(args)
    documents = read_gold(args.data)
    if not documents:
        raise InputError(f"{args.data}: no gold records")
    only = {name.strip().upper() for name in args.only.split(",")} if args.only else None

    def predict(document: Any) -> list[Any]:
        language = document.language if document.language in LANGUAGES else None
        return list(iter_predictions(engine.detect(document.text, language)))

    report = evaluate(documents, predict, entities=only)
    print(format_report(report, title=f"veil {__version__}, mode {engine.policy.mode}, {args.data}"))
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print what detection runs here: detectors, models, languages, extras."""
    from veil.doctor import report  # noqa: PLC0415

    lines, healthy = report(_engine(args), load=args.load)
    print("\n".join(lines))
    return EXIT_OK if healthy else EXIT_ERROR


SERVER_MISSING = "`veil serve` needs the server package: pip install veil-server"
SERVER_KEY_ACTIONS = ("create", "list", "revoke")


def cmd_serve(argv: Sequence[str]) -> int:
    """Hand `veil serve …` to veil_server, imported only now: the core never depends on it."""
    try:
        from veil_server.cli import main as serve  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "veil_server":
            raise
        print(f"veil serve: error: {SERVER_MISSING}", file=sys.stderr)
        return EXIT_ERROR
    return serve(list(argv))


def cmd_server_keys(argv: Sequence[str]) -> int:
    """Hand `veil keys create|list|revoke …` (the gateway's API keys) to veil_server, imported only now."""
    try:
        from veil_server.keys_cli import main as keys  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "veil_server":
            raise
        print("veil keys: error: API keys are the gateway's: pip install veil-server", file=sys.stderr)
        return EXIT_ERROR
    return keys(list(argv))


def build_parser() -> argparse.ArgumentParser:
    # Here, not at import: `veil serve` starts the gateway without loading the batch runner.
    from veil.batch.cli import add_arguments as add_batch_arguments  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="veil",
        description="Find personal data in text (English and Quebec French) and redact it.",
        epilog="Detectors: the rules engine (patterns, checksums, context words) is always on.",
    )
    parser.add_argument("--version", action="version", version=f"veil {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--language",
            choices=[*LANGUAGES, "auto"],
            default="auto",
            help="language of the text (default: auto, per text)",
        )
        sub.add_argument(
            "--mode",
            choices=MODES,
            help="strict: maximal recall; permissive: precision (default: the config's, else strict)",
        )
        sub.add_argument("--entities", help="comma-separated entity names to report (default: all)")
        sub.add_argument("--exclude", help="comma-separated entity names never to report")
        sub.add_argument(
            "--ner",
            choices=NER_MODES,
            help="names, places, organisations with spaCy: auto (when veil[ner] is installed, the default), "
            "required, off (rules only); see `veil doctor`",
        )
        sub.add_argument("--config", help="a veil.toml whose [policy] table to use")

    def vault_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--vault", help="the vault directory (default: $VEIL_HOME, else .veil)")
        sub.add_argument("--tenant", default="default", help="the tenant (default: default)")
        sub.add_argument("--actor", help="who runs the command, for the audit log")

    scan = commands.add_parser("scan", help="print the PII spans of a text")
    scan.add_argument(
        "input", nargs="*", default=["-"], help="a UTF-8 text file, or - for standard input; or files and folders"
    )
    scan.add_argument(
        "--jsonl",
        action="store_true",
        help='input is JSON Lines {"id", "text", "language"}; output {"id", "spans"} per line',
    )
    scan.add_argument("--json", action="store_true", help="print the spans as one JSON array")
    scan.add_argument("-o", "--output", help="write to this file (atomically) instead of standard output")
    scan.add_argument("--fail-on-pii", action="store_true", help=f"exit with status {EXIT_FOUND} if any PII is found")
    common(scan)
    add_batch_arguments(scan)
    scan.set_defaults(handler=cmd_scan)

    anonymize = commands.add_parser("anonymize", help="print the text with its PII redacted")
    anonymize.add_argument(
        "input", nargs="*", default=["-"], help="a UTF-8 text file, or - for standard input; or files and folders"
    )
    anonymize.add_argument(
        "--jsonl", action="store_true", help='input is JSON Lines; output {"id", "text", "spans"} per line'
    )
    anonymize.add_argument(
        "-o", "--output", help="write to this file (atomically) instead of standard output; a folder for a batch run"
    )
    anonymize.add_argument(
        "--fail-on-pii", action="store_true", help=f"exit with status {EXIT_FOUND} if any PII is found"
    )
    anonymize.add_argument("-v", "--verbose", action="store_true", help="print the number of spans on stderr")
    anonymize.add_argument("--scope", help="reversible: replace values by tokens kept in the vault under this scope")
    anonymize.add_argument("--subject", help="with --scope: file the values under this data subject (for erasure)")
    common(anonymize)
    vault_options(anonymize)
    add_batch_arguments(anonymize)
    anonymize.set_defaults(handler=cmd_anonymize)

    restore = commands.add_parser("restore", help="replace tokens by their values (from the vault)")
    restore.add_argument("input", nargs="?", default="-", help="a UTF-8 text file, or - for standard input")
    restore.add_argument("--scope", required=True, help="the scope the tokens were made in")
    restore.add_argument("--lenient", action="store_true", help="keep unknown tokens as written instead of failing")
    restore.add_argument("-o", "--output", help="write to this file (atomically) instead of standard output")
    vault_options(restore)
    restore.set_defaults(handler=cmd_restore)

    keys = commands.add_parser(
        "keys",
        help="create, inspect and rotate the vault's keys; create|list|revoke: the gateway's API keys "
        "(`veil keys create --help`)",
    )
    keys.add_argument("action", choices=["init", "status", "rotate", "generate", *SERVER_KEY_ACTIONS])
    vault_options(keys)
    keys.set_defaults(handler=cmd_keys)

    audit = commands.add_parser("audit", help="verify the audit log")
    audit.add_argument("action", choices=["verify"])
    audit.add_argument("--head", help="SEQ:MAC of a head exported earlier, to detect truncation")
    vault_options(audit)
    audit.set_defaults(handler=cmd_audit)

    vault = commands.add_parser("vault", help="erase mappings (Loi 25 / GDPR)")
    vault.add_argument("action", choices=["erase"])
    vault.add_argument("--scope", help="erase every mapping of this scope")
    vault.add_argument("--subject", help="erase every mapping filed under this data subject")
    vault_options(vault)
    vault.set_defaults(handler=cmd_vault)

    evaluate = commands.add_parser("eval", help="score the engine against gold JSON Lines")
    evaluate.add_argument("--data", required=True, help='gold JSON Lines: {"id", "text", "language", "spans"}')
    evaluate.add_argument("--only", help="comma-separated gold entities to score (default: all)")
    common(evaluate)
    evaluate.set_defaults(handler=cmd_eval)

    doctor = commands.add_parser("doctor", help="show the active detectors, models, languages and extras")
    doctor.add_argument("--no-load", dest="load", action="store_false", help="do not load the NER models")
    common(doctor)
    doctor.set_defaults(handler=cmd_doctor)

    # Listed for --help; `main` hands `veil serve …` to the server package before parsing.
    commands.add_parser("serve", help="run the OpenAI-compatible gateway (pip install veil-server)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["serve"]:
        return cmd_serve(arguments[1:])
    if arguments[:1] == ["keys"] and arguments[1:2] and arguments[1] in SERVER_KEY_ACTIONS:
        return cmd_server_keys(arguments[1:])
    parser = build_parser()
    args = parser.parse_args(arguments)
    try:
        code: int = args.handler(args)
    except VeilError as exc:
        print(f"veil {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        if getattr(args, "batch_run", False):
            print(f"veil {args.command}: interrupted; finished shards are kept: run the same command again to "
                  "resume", file=sys.stderr)  # fmt: skip
            return 130
        print(f"veil {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `veil scan big.txt | head`: the reader left; that is not an error of ours.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return EXIT_OK
    return code


if __name__ == "__main__":
    raise SystemExit(main())
