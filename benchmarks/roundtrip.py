#!/usr/bin/env python3
"""Reversible tokenization: what anonymize + restore cost over detection, streaming cost per
chunk, and round-trip fidelity on generated bilingual documents.

Run: uv run python benchmarks/roundtrip.py [--messages 2000] [--fidelity 10000]

Rows:
- detection alone vs anonymize + restore of ~300-char chat messages (rules engine, SQLite vault
  from Veil.open, audit log on), with values new to the vault (cold) and already tokenized (warm);
- streaming restore: cost per chunk of a streamed answer (chunks of 4 characters), beside the
  unary restore of the same answer;
- fidelity: restore(anonymize(x)) == x over generated documents, English and French.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time

from veil import Engine, Policy
from veil.session import Veil

FIRST = ["Jean", "Marie", "Émilie", "Luc", "Chloé", "Noah", "Olivia", "Félix", "Léa", "William"]
LAST = ["Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "Gauthier", "Morin", "Lavoie", "Fortin", "Smith"]
STREETS = ["rue Sainte-Catherine Ouest", "boulevard Saint-Laurent", "avenue du Parc", "chemin de la Côte"]
EN_FILLER = ["Please update my file.", "The meeting moved to next week.", "Order 48213 is still pending.",
             "Thanks in advance.", "I already sent the documents twice."]  # fmt: skip
FR_FILLER = ["Merci de mettre à jour mon dossier.", "La commande 48213 est en attente.", "Merci d'avance.",
             "J'ai déjà envoyé les documents deux fois."]  # fmt: skip


def luhn_complete(payload: str) -> str:
    total = 0
    for index, ch in enumerate(reversed(payload)):
        digit = int(ch) * (2 if index % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return payload + str((10 - total % 10) % 10)


def sin(rng: random.Random) -> str:
    number = luhn_complete(str(rng.randint(1, 7)) + "".join(rng.choices("0123456789", k=7)))
    return f"{number[:3]} {number[3:6]} {number[6:]}"


def card(rng: random.Random) -> str:
    number = luhn_complete("4" + "".join(rng.choices("0123456789", k=14)))
    return " ".join(number[i : i + 4] for i in range(0, 16, 4))


def message(rng: random.Random, serial: int) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    email = f"{first.lower()}.{last.lower()}{serial}@exemple.ca".replace("é", "e").replace("ô", "o")
    phone = f"(514) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}"
    if rng.random() < 0.5:
        return (f"{rng.choice(EN_FILLER)} Hi, this is {first} {last}; reach me at {email} or {phone}. "
                f"My SIN is {sin(rng)} and my card {card(rng)}. {rng.choice(EN_FILLER)}")  # fmt: skip
    return (f"{rng.choice(FR_FILLER)} Bonjour, ici {first} {last}; écrivez à {email} ou au {phone}. "
            f"NAS {sin(rng)}, livrez au {rng.randint(1, 9999)}, {rng.choice(STREETS)}, Montréal (Québec) H2X 1Y4. "
            f"{rng.choice(FR_FILLER)}")  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def timed(function, items):  # type: ignore[no-untyped-def]
    out = []
    for item in items:
        start = time.perf_counter()
        function(item)
        out.append((time.perf_counter() - start) * 1e3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--fidelity", type=int, default=10000)
    parser.add_argument("--no-audit-traffic", dest="audit_traffic", action="store_false",
                        help="do not write a tokenize/restore audit record per call")  # fmt: skip
    args = parser.parse_args()
    rng = random.Random(7)
    messages = [message(rng, i) for i in range(args.messages)]
    engine = Engine(Policy(ner="off"))  # the rules engine: NER is measured by ner_speed.py
    for text in messages[:50]:
        engine.detect(text)

    rows = []
    with tempfile.TemporaryDirectory() as home:
        veil = Veil.open(home, engine=engine, audit_traffic=args.audit_traffic)
        session = veil.session("bench")
        detect = timed(engine.detect, messages)
        cold = timed(lambda text: session.restore(session.anonymize(text).text), messages)
        warm = timed(lambda text: session.restore(session.anonymize(text).text), messages)
        fresh = veil.session("bench")  # same scope, empty session cache: every value found in the vault
        vault_hit = timed(lambda text: fresh.restore(fresh.anonymize(text).text), messages)
        for label, values in (("detection alone", detect), ("anonymize + restore, new values", cold),
                              ("anonymize + restore, session cache", warm),
                              ("anonymize + restore, values in the vault", vault_hit)):  # fmt: skip
            rows.append((label, statistics.median(values), percentile(values, 95)))

        # A conversation's session: the prompt it anonymized, the answer it restores.
        conversation = veil.session("conversation")
        answer = conversation.anonymize(" ".join(messages[:6])).text
        chunks = [answer[i : i + 4] for i in range(0, len(answer), 4)]
        unary = timed(conversation.restore, [answer] * 200)
        per_chunk = []
        for _ in range(50):
            stream = conversation.stream_restorer()
            start = time.perf_counter()
            for chunk in chunks:
                stream.feed(chunk)
            stream.flush()
            per_chunk.append((time.perf_counter() - start) * 1e6 / len(chunks))
        veil.close()

    print(f"## Round trip ({args.messages} chat messages of ~{sum(map(len, messages)) // len(messages)} chars)\n")
    print("| path | p50 ms | p95 ms |\n|---|---|---|")
    for label, p50, p95 in rows:
        print(f"| {label} | {p50:.3f} | {p95:.3f} |")
    base = rows[0][1]
    print(f"\nover detection (p50): new values +{rows[1][1] - base:.3f} ms, session cache +{rows[2][1] - base:.3f} ms, "
          f"vault hit +{rows[3][1] - base:.3f} ms")  # fmt: skip
    print(f"\n## Streaming restore ({len(answer)} chars in {len(chunks)} chunks of 4)\n")
    print("| measure | value |\n|---|---|")
    print(f"| unary restore of the answer, p50 | {statistics.median(unary) * 1e3:.1f} µs |")
    print(f"| streaming, per chunk, p50 | {statistics.median(per_chunk):.1f} µs |")

    rng = random.Random(11)
    veil = Veil(engine=engine, audit_traffic=False)
    ok = 0
    for index in range(args.fidelity):
        text = message(rng, index) + " " + message(rng, index + 1)
        session = veil.session(f"doc-{index % 100}")
        ok += session.restore(session.anonymize(text).text) == text
    print(f"\n## Fidelity\n\nrestore(anonymize(x)) == x for {ok} of {args.fidelity} generated documents (EN and FR)")


if __name__ == "__main__":
    main()
