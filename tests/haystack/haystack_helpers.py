"""Canary values and checks shared by the Haystack tests (a module of its own: conftest is not importable)."""

from __future__ import annotations

from veil import Policy

EMAIL = "marie.tremblay@exemple.qc.ca"
PHONE = "+1 514 872 3456"
SIN = "130 692 544"
CARD = "4111 1111 1111 1111"
CANARIES = (EMAIL, PHONE, SIN, CARD)
# A value may also leak with its separators changed.
COMPACT = tuple("".join(ch for ch in value if ch.isalnum()) for value in (PHONE, SIN, CARD))


def assert_no_canary(texts: object) -> None:
    """None of the canary values, in any spacing, occurs in what an upstream model or store received."""
    blob = texts if isinstance(texts, str) else "\n".join(map(str, texts))  # type: ignore[call-overload]
    squeezed = "".join(ch for ch in blob if ch.isalnum())
    for value in CANARIES:
        assert value not in blob, "a canary value reached the upstream"
    for value in COMPACT:
        assert value not in squeezed, "a canary value reached the upstream"
    assert "marie.tremblay" not in blob


# These tests are about the components, not about NER: the rules engine keeps them fast and their
# expected tokens independent of a language model (where the policy knows the option).
RULES_ONLY: dict[str, object] = {"ner": "off"} if "ner" in Policy.__dataclass_fields__ else {}
