"""The ~300-character chat messages the adapters' overhead benchmarks send (shared by
langchain_overhead.py and llamaindex_overhead.py, so both measure the same text)."""

from __future__ import annotations

import random

FIRST = ["Jean", "Marie", "Émilie", "Luc", "Chloé", "Noah", "Olivia", "Félix"]
LAST = ["Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "Gauthier", "Morin", "Lavoie"]


def luhn_complete(payload: str) -> str:
    total = 0
    for index, ch in enumerate(reversed(payload)):
        digit = int(ch) * (2 if index % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return payload + str((10 - total % 10) % 10)


def message(rng: random.Random, serial: int) -> str:
    """About 300 characters with an e-mail, a phone number, a SIN and a card number."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    email = f"{first.lower()}.{last.lower()}{serial}@exemple.ca".replace("é", "e").replace("ô", "o")
    sin = luhn_complete(str(rng.randint(1, 7)) + "".join(rng.choices("0123456789", k=7)))
    card = luhn_complete("4" + "".join(rng.choices("0123456789", k=14)))
    text = (f"Bonjour, ici {first} {last}. Merci de mettre à jour mon dossier: écrivez à {email} ou au "
            f"(514) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}. Mon NAS est {sin[:3]} {sin[3:6]} {sin[6:]} "
            f"et ma carte {' '.join(card[i : i + 4] for i in range(0, 16, 4))}. La commande 48213 est en attente; "
            "j'ai déjà envoyé les documents deux fois. Pouvez-vous me confirmer la réception? Merci.")  # fmt: skip
    return text[:300]
