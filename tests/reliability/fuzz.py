"""Run a fuzz target of tests/reliability/fuzz_targets.py with atheris for a given time.

    uv run python tests/reliability/fuzz.py detect --seconds 600
    uv run python tests/reliability/fuzz.py all --seconds 60          # each target in turn
    uv run python tests/reliability/fuzz.py sse --runs 100000

veil (and veil_server, for `sse`) is instrumented for coverage, so atheris steers its inputs
into new branches. A failing input is written to --artifacts (default: a fresh temporary
directory) and the run exits non-zero; copy it into tests/reliability/fuzz_regressions/ as
`<target>-<what it shows>` and fix the core: tests/reliability/test_fuzz.py replays every file
there on every test run. The seeds in fuzz_regressions/ start each run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REGRESSIONS = HERE / "fuzz_regressions"
TARGET_NAMES = ("detect", "anonymize", "restore", "stream", "structured", "sse")


def command(target: str, seconds: int, runs: int | None, artifacts: Path) -> list[str]:
    """The command that fuzzes one target in a child process (libFuzzer exits the process when
    it stops), its corpus seeded with the saved inputs of that target."""
    corpus = Path(tempfile.mkdtemp(prefix=f"veil-fuzz-{target}-"))
    for seed in REGRESSIONS.glob(f"{target}-*"):
        (corpus / seed.name).write_bytes(seed.read_bytes())
    flags = [f"-max_total_time={seconds}", f"-artifact_prefix={artifacts}/{target}-", "-max_len=4096", "-timeout=20"]
    if runs is not None:
        flags.append(f"-runs={runs}")
    return [sys.executable, str(Path(__file__)), "--child", target, *flags, str(corpus)]


def _run_one(target: str, seconds: int, runs: int | None, artifacts: Path) -> int:
    print(f"fuzz {target}: {seconds} s", flush=True)
    return subprocess.call(command(target, seconds, runs, artifacts))


def _child(target: str, libfuzzer_args: list[str]) -> None:
    import atheris

    sys.path.insert(0, str(HERE))
    with atheris.instrument_imports(include=["veil", "veil_server"]):
        import fuzz_targets
        import veil_server.upstream  # noqa: F401 - the `sse` target imports it lazily: instrument it here

    function = fuzz_targets.TARGETS[target]
    atheris.Setup([sys.argv[0], *libfuzzer_args], function)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--child"]:
        _child(args[1], args[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=(*TARGET_NAMES, "all"))
    parser.add_argument("--seconds", type=int, default=60, help="time per target (default 60)")
    parser.add_argument("--runs", type=int, default=None, help="stop after this many inputs")
    parser.add_argument("--artifacts", type=Path, default=None, help="where failing inputs are written")
    options = parser.parse_args(args)
    artifacts = options.artifacts or Path(tempfile.mkdtemp(prefix="veil-fuzz-artifacts-"))
    artifacts.mkdir(parents=True, exist_ok=True)
    targets = TARGET_NAMES if options.target == "all" else (options.target,)
    failed = [t for t in targets if _run_one(t, options.seconds, options.runs, artifacts) != 0]
    if failed:
        print(f"failing inputs for {', '.join(failed)} are in {artifacts}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
