#!/usr/bin/env python3
"""Overhead of the veil Haystack components per ~300-character chat message.

Run: uv run python benchmarks/haystack_overhead.py [--calls 2000]

The wrapped model is Haystack's MockChatGenerator in echo mode (it answers at once with the
message it was given, tokens included, so restore has work to do); the bare column runs it
alone, the veil column through VeilChatGenerator, so the difference is veil's cost: anonymizing
the message, restoring the reply (whole, or streamed word by word), and the component plumbing.
The rules engine (`policy={"ner": "off"}`) and the in-memory vault are used; the target is
p50 overhead <= 1 ms per message.

Rows:
- VeilChatGenerator, scope per conversation: values are new the first time, then found again;
- VeilChatGenerator, no scope: a scope per call, erased when the call ends (measured first, on a
  small vault: the in-memory vault's erase scans every record);
- VeilChatGenerator, streaming, scope per conversation;
- VeilTextAnonymizer and VeilRestorer alone (text), scope per conversation.

Numbers are wall-clock on a shared 2-core machine with other jobs running: read them as an
order of magnitude, and compare the columns of one run rather than runs with each other.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

from haystack.components.generators.chat import MockChatGenerator
from haystack.dataclasses import ChatMessage, StreamingChunk
from veil_haystack import VeilChatGenerator, VeilConfig, VeilRestorer, VeilTextAnonymizer

FIRST = ["Jean", "Marie", "Émilie", "Luc", "Chloé", "Noah", "Olivia", "Félix"]
LAST = ["Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "Gauthier", "Morin", "Lavoie"]
FILLER = ["Merci de mettre à jour mon dossier.", "Please update my file.", "La commande 48213 est en attente.",
          "The meeting moved to next week.", "J'ai déjà envoyé les documents deux fois."]  # fmt: skip


def message(rng: random.Random, serial: int) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    email = f"{first.lower()}.{last.lower()}{serial}@exemple.ca".replace("é", "e").replace("ô", "o")
    phone = f"(514) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}"
    text = (f"{rng.choice(FILLER)} Bonjour, ici {first} {last}; écrivez à {email} ou au {phone}. "
            "Carte 4111 1111 1111 1111, NAS 130 692 544.")  # fmt: skip
    while len(text) < 300:
        text += " " + rng.choice(FILLER)
    return text[:300]


def timed(function: Callable[[Any], object], items: list[Any]) -> list[float]:
    out = []
    for item in items:
        start = time.perf_counter()
        function(item)
        out.append((time.perf_counter() - start) * 1e3)
    return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[94]


def ignore(chunk: StreamingChunk) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(7)
    texts = [message(rng, i % 200) for i in range(args.calls)]  # 200 people: values recur, as in a conversation
    conversations = [[ChatMessage.from_user(text)] for text in texts]
    config = VeilConfig(policy={"ner": "off"}, tenant="bench")

    bare = MockChatGenerator()
    wrapped = VeilChatGenerator(generator=MockChatGenerator(), config=config)
    anonymizer = VeilTextAnonymizer(config=config, scope="bench-text")
    restorer = VeilRestorer(config=config, scope="bench-text")
    wrapped.warm_up()
    for conversation in conversations[:50]:  # warm caches, compile patterns
        wrapped.run(conversation, scope="warm-up")
        bare.run(conversation)

    rows = []
    base = timed(bare.run, conversations)
    rows.append(("bare MockChatGenerator (echo)", base, None))
    # First, while the vault is small: MemoryVault.erase_scope scans every record, so this row
    # grows with the vault's size (SQLite and PostgreSQL erase by index).
    fresh = timed(wrapped.run, conversations)
    scoped = timed(lambda m: wrapped.run(m, scope="conversation"), conversations)
    rows.append(("VeilChatGenerator, scope per conversation", scoped, base))
    rows.append(("VeilChatGenerator, no scope (erased per call)", fresh, base))
    bare_stream = timed(lambda m: bare.run(m, streaming_callback=ignore), conversations)
    rows.append(("bare MockChatGenerator, streaming", bare_stream, None))
    streamed = timed(lambda m: wrapped.run(m, streaming_callback=ignore, scope="conversation"), conversations)
    rows.append(("VeilChatGenerator, streaming, scope per conversation", streamed, bare_stream))
    anonymized = [anonymizer.run(text=text)["text"] for text in texts]
    rows.append(("VeilTextAnonymizer (text)", timed(lambda t: anonymizer.run(text=t), texts), None))
    rows.append(("VeilRestorer (text)", timed(lambda t: restorer.run(text=t), anonymized), None))

    average = sum(map(len, texts)) // len(texts)
    print(f"## Haystack components ({args.calls} messages of ~{average} chars, rules engine, in-memory vault)\n")
    print("| path | p50 ms | p95 ms | p50 overhead ms |\n|---|---|---|---|")
    for label, values, against in rows:
        overhead = f"{statistics.median(values) - statistics.median(against):.3f}" if against else "—"
        print(f"| {label} | {statistics.median(values):.3f} | {p95(values):.3f} | {overhead} |")
    print("\nShared 2-core machine, other jobs running: compare columns of one run, not runs.")


if __name__ == "__main__":
    main()
