#!/usr/bin/env python3
"""Batch runs: throughput against --jobs, memory against input size, Ray against --jobs.

Generates a JSON Lines corpus of support tickets (EN and FR, e-mails, phones, SINs, names), then:

1. `veil anonymize corpus.jsonl -o out/ --jobs N` for N = 1, 2 (rules only, redaction): wall
   time, CPU time of the whole process tree (user + system, from /usr/bin/time), documents/s.
   On a machine shared with other work the wall-time ratio understates scaling; the CPU-time
   column shows whether the work itself grew.
2. The same with --jobs 1 on inputs of growing size: peak RSS of the largest process (with
   --jobs 1 the only one). Flat RSS means streaming works. `--ner` adds spaCy runs.
3. `veil.batch.ray.anonymize_dataset` on a local Ray runtime with 2 actors against --jobs 2 on
   the same rows (ray.init and dataset creation timed apart), and whether Ray's rows are
   byte-identical to the single-process output once put in the same order.

    uv run python benchmarks/batch.py                      # 20 MB corpus, sizes 20 and 100 MB
    uv run python benchmarks/batch.py --mb 50 --sizes 50,200,1000 --ner --ray
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIRST = ["Jean", "Marie-Ève", "John", "Sarah", "Luc", "Amélie", "Paul", "Nadia"]
LAST = ["Tremblay", "Gagnon", "Smith", "Roy", "Côté", "Johnson", "Bouchard", "Martin"]


def generate(path: Path, megabytes: float, seed: int = 7) -> int:
    rng = random.Random(seed)
    target, written, rows = int(megabytes * 1e6), 0, 0
    with open(path, "w", encoding="utf-8") as handle:
        while written < target:
            first, last = rng.choice(FIRST), rng.choice(LAST)
            email = f"{first.lower()}.{last.lower()}{rng.randrange(500)}@exemple.ca"
            phone = f"514-555-{rng.randrange(10000):04d}"
            if rng.random() < 0.5:
                text = (f"Bonjour, je suis {first} {last}. Écrivez-moi à {email} ou appelez le {phone}. "
                        f"Mon NAS est 130 692 544. La commande {rng.randrange(10**6)} n'est pas arrivée.")  # fmt: skip
                language = "fr"
            else:
                text = (f"Hi, this is {first} {last}. Reach me at {email} or {phone}. "
                        f"Order {rng.randrange(10**6)} never came; card 4111 1111 1111 1111 was billed.")  # fmt: skip
                language = "en"
            line = json.dumps({"id": rows, "text": text, "language": language}, ensure_ascii=False) + "\n"
            handle.write(line)
            written += len(line.encode())
            rows += 1
    return rows


def measured(command: list[str]) -> dict[str, float]:
    """Run under /usr/bin/time: wall s, CPU s (user+sys of the process tree), max RSS MB."""
    result = subprocess.run(["/usr/bin/time", "-f", "TIME %e %U %S %M", *command], capture_output=True, text=True,
                            check=False)  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    line = next(line for line in result.stderr.splitlines() if line.startswith("TIME "))
    wall, user, system, rss = (float(x) for x in line.split()[1:])
    return {"wall": wall, "cpu": user + system, "rss": rss / 1024}


def veil(corpus: Path, out: Path, jobs: int, ner: bool) -> list[str]:
    return [sys.executable, "-m", "veil.cli", "anonymize", str(corpus), "-o", str(out), "-j", str(jobs), "-q",
            "--ner", "auto" if ner else "off", "--restart"]  # fmt: skip


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def machine_parallelism(n: int = 15_000_000) -> float:
    """What two processes get from this machine right now: a pure-CPU loop run once, then twice
    on two processes. 2.0 on two idle cores; less when other work holds a core."""
    import multiprocessing

    started = time.perf_counter()
    _burn(n)
    one = time.perf_counter() - started
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        started = time.perf_counter()
        pool.map(_burn, [n, n])
        two = time.perf_counter() - started
    return 2 * one / two


def scaling(work: Path, megabytes: float, ner: bool) -> None:
    corpus = work / "scaling.jsonl"
    rows = generate(corpus, megabytes)
    print(f"\n## Throughput against --jobs ({megabytes:g} MB, {rows} documents, {'NER' if ner else 'rules only'})\n")
    print("| jobs | wall s | CPU s | documents/s (wall) | speed-up (wall) | CPU s per document (µs) |")
    print("|---:|---:|---:|---:|---:|---:|")
    base = None
    before = machine_parallelism()
    for jobs in (1, 2):
        m = measured(veil(corpus, work / f"out{jobs}", jobs, ner))
        base = base or m["wall"]
        print(f"| {jobs} | {m['wall']:.1f} | {m['cpu']:.1f} | {rows / m['wall']:,.0f} | {base / m['wall']:.2f}× | "
              f"{1e6 * m['cpu'] / rows:.0f} |")  # fmt: skip
    after = machine_parallelism()
    print(f"\nwhat two processes of pure CPU work got from the machine, before and after: {before:.2f}×, {after:.2f}×")
    same = (work / "out1" / "scaling.jsonl").read_bytes() == (work / "out2" / "scaling.jsonl").read_bytes()
    print(f"\n--jobs 1 and --jobs 2 outputs byte-identical: {same}")


def memory(work: Path, sizes: list[float], ner: bool) -> None:
    print(f"\n## Peak RSS against input size (--jobs 1, {'NER' if ner else 'rules only'})\n")
    print("| input MB | documents | wall s | max RSS MB |")
    print("|---:|---:|---:|---:|")
    for size in sizes:
        corpus = work / f"size{size:g}.jsonl"
        rows = generate(corpus, size, seed=int(size))
        m = measured(veil(corpus, work / f"mem{size:g}", 1, ner))
        print(f"| {size:g} | {rows} | {m['wall']:.1f} | {m['rss']:.0f} |")
        corpus.unlink()


def start_ray(ray: object) -> None:
    """ray.init, tried twice: on a loaded machine the raylet may miss Ray's fixed 30 s start-up wait."""
    for attempt in (1, 2):
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)  # type: ignore[attr-defined]
            return
        except Exception:
            ray.shutdown()  # type: ignore[attr-defined]
            if attempt == 2:
                raise


def with_ray(work: Path, megabytes: float) -> None:
    import ray

    from veil.batch.ray import anonymize_dataset
    from veil.detect.policy import Policy

    corpus = work / "ray.jsonl"
    rows = generate(corpus, megabytes, seed=3)
    jobs = measured(veil(corpus, work / "ray-jobs", 2, ner=False))
    started = time.perf_counter()
    start_ray(ray)
    ray.data.DataContext.get_current().enable_progress_bars = False
    initialised = time.perf_counter()
    records = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines()]
    ds = ray.data.from_items(records, override_num_blocks=16).materialize()
    loaded = time.perf_counter()
    out = anonymize_dataset(ds, columns=["text"], policy=Policy(ner="off"), concurrency=2, batch_size=256).take_all()
    finished = time.perf_counter()
    ray.shutdown()
    lines = [json.dumps(r, ensure_ascii=False) for r in sorted(out, key=lambda r: r["id"])]
    single = (work / "ray-jobs" / "ray.jsonl").read_text(encoding="utf-8").splitlines()
    print(f"\n## Ray Data (2 actors) against --jobs 2 ({megabytes:g} MB, {rows} documents, rules only)\n")
    print("| run | wall s |")
    print("|---|---:|")
    print(f"| veil anonymize --jobs 2 (process start included) | {jobs['wall']:.1f} |")
    print(f"| ray.init | {initialised - started:.1f} |")
    print(f"| ray.data.from_items (driver) | {loaded - initialised:.1f} |")
    print(f"| anonymize_dataset, 2 actors (actor start included) | {finished - loaded:.1f} |")
    print(f"\noverhead of Ray against --jobs 2 (map only): {(finished - loaded) / jobs['wall']:.2f}×")
    print(f"Ray rows byte-identical to the single-process output (in id order): {lines == single}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=20, help="corpus size for the --jobs and Ray runs")
    parser.add_argument("--sizes", default="20,100", help="comma-separated input sizes (MB) for the memory runs")
    parser.add_argument("--ner", action="store_true", help="also run with spaCy NER")
    parser.add_argument("--ray", action="store_true", help="also compare with Ray Data (needs veil[ray])")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-scaling", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        work = Path(name)
        if not args.skip_scaling:
            scaling(work, args.mb, ner=False)
            if args.ner:
                scaling(work, args.mb / 10, ner=True)
        if not args.skip_memory:
            sizes = [float(s) for s in args.sizes.split(",")]
            memory(work, sizes, ner=False)
            if args.ner:
                memory(work, [s / 10 for s in sizes], ner=True)
        if args.ray:
            with_ray(work, args.mb / 4)


if __name__ == "__main__":
    main()
