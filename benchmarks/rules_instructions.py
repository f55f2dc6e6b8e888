#!/usr/bin/env python3
"""CPU instructions per text of veil's rules engine, counted by callgrind: a load-independent
measure for A/B comparisons on a machine shared with other work (wall-clock timings are not).

Each count runs a fresh interpreter under `valgrind --tool=callgrind` twice, with the same
setup (import, build, warm-up on other texts) and then 0 or N texts of the workload; the
difference divided by N is the cost of one text. Hash randomisation is off, so that two runs of
the same code count the same (to within ~0.1 %).

Variants: `engine` (`Engine(Policy(ner="off")).detect`, what detect_speed.py times), `rules`
(`RuleDetector(BUILTIN_RULES).detect` alone, no engine decisions) and `no-shape` (the engine
with `RuleDetector(by_shape=False)`: every rule of a shared pass tried at each position).
Workloads: the texts detect_speed.py times after the same warm-up: `messages` (1,000 chat
messages of ~300 characters) and `documents` (40 texts of ~5 KB). `--source DIR` runs the
children with DIR first on the import path, e.g. an older checkout made by
`git archive OLD packages/veil | tar -x -C /tmp/old`.

    uv run python benchmarks/rules_instructions.py                          # engine, messages
    uv run python benchmarks/rules_instructions.py --variant engine --variant no-shape --workload documents
    uv run python benchmarks/rules_instructions.py --source /tmp/old/packages/veil/src   # the old code
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import callgrind

VARIANTS = ("engine", "rules", "no-shape")
WORKLOADS = {"messages": 1000, "documents": 40}
"""Workload → texts counted by default: the chat messages and documents detect_speed.py times."""


def detector(variant: str) -> Callable[[str, Any], object]:
    from veil import Engine, Policy
    from veil.detect.rules import BUILTIN_RULES, RuleDetector

    if variant == "engine":
        return Engine(Policy(ner="off")).detect
    if variant == "rules":
        return RuleDetector(BUILTIN_RULES).detect
    return Engine(Policy(ner="off"), detectors=[RuleDetector(BUILTIN_RULES, by_shape=False)]).detect


def child(variant: str, workload: str, count: int) -> None:
    """Runs under callgrind: setup and detect_speed.py's warm-up, then `count` texts of the workload."""
    from detect_speed import corpus

    detect = detector(variant)
    chats, documents = corpus(7, WORKLOADS["messages"], WORKLOADS["documents"])
    measured = (chats if workload == "messages" else documents)[:count]
    warm_chats, warm_documents = corpus(8, 100, 4)
    for text, language in [*warm_chats, *warm_documents]:
        detect(text, language)
    for text, language in measured:
        detect(text, language)


def instructions(variant: str, workload: str, count: int, source: str | None) -> int:
    """Instructions callgrind counts for a child run (`Collected :` in its summary)."""
    paths = [source] if source else []
    return callgrind.count(
        __file__, ["--child", variant, workload, str(count)], paths=[*paths, str(Path(__file__).parent)]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", choices=VARIANTS, help="repeatable; default: engine")
    parser.add_argument("--workload", choices=list(WORKLOADS), default="messages")
    parser.add_argument("--count", type=int, help="texts counted, the first of the workload (default: all)")
    parser.add_argument("--source", help="a directory put first on the children's import path")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        variant, workload, count = args.child
        child(variant, workload, int(count))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (callgrind counts the instructions)")
    count = args.count or WORKLOADS[args.workload]
    where = f" ({args.source})" if args.source else ""
    for variant in args.variant or ["engine"]:
        base = instructions(variant, args.workload, 0, args.source)
        total = instructions(variant, args.workload, count, args.source)
        print(
            f"{variant}{where}: {(total - base) / count / 1e3:,.0f} K instructions per text "
            f"({args.workload}, {count} texts; setup {base / 1e6:,.0f} M)"
        )


if __name__ == "__main__":
    main()
