"""Credentials pasted into prompts (SECRET): API keys with well-known prefixes, JWTs, private
keys, and bearer tokens with enough entropy to be machine-made.

Each pattern needs its prefix to be present in the text before it runs at all.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from veil.detect.rules.base import Rule
from veil.entities import Entity


def shannon_entropy(value: str) -> float:
    """Bits per character of `value`.

    >>> round(shannon_entropy("aaaa"), 2), shannon_entropy("abcd") == 2.0
    (0.0, True)
    """
    if not value:
        return 0.0
    counts = Counter(value)
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def _looks_random(value: str) -> bool:
    token = value.rsplit(maxsplit=1)[-1]
    classes = sum((any(c.islower() for c in token), any(c.isupper() for c in token), any(c.isdigit() for c in token)))
    return len(token) >= 20 and classes >= 2 and shannon_entropy(token) >= 3.5


def _keyed(name: str, pattern: str, requires: tuple[str, ...], example: str) -> Rule:
    return Rule(
        name=name,
        entity=Entity.SECRET,
        pattern=pattern,
        score=0.95,
        requires=requires,
        examples=(example,),
    )


_KEYED = (
    _keyed(
        "secret_openai",
        r"sk-(?:proj-|ant-|svcacct-)?[A-Za-z0-9_\-]{20,}",
        ("sk-",),
        "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
    ),
    _keyed(
        "secret_github",
        r"(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    ),
    _keyed(
        "secret_aws_access_key",
        r"(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Za-z])",
        ("AKIA", "ASIA"),
        "AKIAIOSFODNN7EXAMPLE",
    ),
    _keyed(
        "secret_google_api_key",
        r"AIza[0-9A-Za-z_\-]{35}",
        ("AIza",),
        "AIza" + "Sy" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    ),
    _keyed("secret_slack", r"xox[abposr]-[0-9A-Za-z\-]{10,250}", ("xox",), "xoxb-123456789012-abcdefABCDEF"),
    _keyed(
        "secret_stripe",
        r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,247}",
        ("_live_", "_test_"),
        "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    ),
    _keyed("secret_gitlab", r"glpat-[0-9A-Za-z_\-]{20,}", ("glpat-",), "glpat-abcdefghij1234567890"),
    _keyed(
        "secret_jwt",
        # Starts at a word start, and its runs never give back (they cannot hold the dot that
        # follows): "eyJeyJeyJ…" without dots was read to its end from every "eyJ".
        r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{8,}+\.eyJ[A-Za-z0-9_\-]{8,}+\.[A-Za-z0-9_\-]{8,}",
        ("eyJ",),
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ),
    _keyed(
        "secret_private_key",
        # The body never holds five dashes: a BEGIN without its END stops at the next BEGIN
        # instead of reading 8000 characters past it (each BEGIN of a broken dump did).
        r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----(?:[^-]|-(?!----)){0,8000}+-----END (?:[A-Z]+ )?PRIVATE KEY-----",
        ("-----BEGIN",),
        "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----",
    ),
)


# Words that announce a credential (regex alternations, not credentials).
_TOKEN_LABELS = r"token|access[_\- ]?token|api[_\- ]?key|apikey|client[_\- ]?secret|secret"  # noqa: S105
_PASSWORD_LABELS = r"password|passwd|pwd|mot[ ]de[ ]passe|passe"  # noqa: S105
_TOKEN_LABEL_BEFORE = re.compile(rf"(?<![A-Za-z])(?i:{_TOKEN_LABELS})[\"']?[ \t]*\Z")
_PASSWORD_LABEL_BEFORE = re.compile(rf"(?<![A-Za-z])(?i:{_PASSWORD_LABELS})[\"']?[ \t]*\Z")
_OPENING = {")": "(", "]": "[", "}": "{"}


def _value_after(text: str, start: int, end: int, label: re.Pattern[str]) -> tuple[int, int] | None:
    """The match starts at a ':' or '=': keep it only when a label stands right before, and report
    the value alone, without the sentence's punctuation after it ("(password: hunter2!)")."""
    if label.search(text, max(0, start - 40), start) is None:
        return None
    value_start = start + 1
    while value_start < end and text[value_start] in " \t":
        value_start += 1
    value = text[value_start:end]
    while value and (
        value[-1] in ".,;:" or (value[-1] in ")]}" and value.count(_OPENING[value[-1]]) < value.count(value[-1]))
    ):
        value = value[:-1]
    return (value_start, value_start + len(value)) if value else None


def _after_token_label(text: str, start: int, end: int) -> tuple[int, int] | None:
    return _value_after(text, start, end, _TOKEN_LABEL_BEFORE)


def _after_password_label(text: str, start: int, end: int) -> tuple[int, int] | None:
    return _value_after(text, start, end, _PASSWORD_LABEL_BEFORE)


_BEARER_WORD = re.compile(r"(?:bearer|token)[ \t]+", re.IGNORECASE)


def _after_bearer(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Report the token, not the word ("Bearer", "Token") before it."""
    word = _BEARER_WORD.match(text, start, end)
    return (word.end(), end) if word else None


BEARER_TOKEN = Rule(
    name="secret_bearer",
    entity=Entity.SECRET,
    pattern=r"(?:Bearer|bearer|BEARER|Token|token|TOKEN)[ \t]+[A-Za-z0-9_\-.=+/]{20,512}",
    score=0.8,
    validate=_looks_random,
    refine=_after_bearer,
    requires=("earer", "EARER", "oken", "OKEN"),
    examples=("Bearer abcDEF1234567890ghijKLMNOP",),
    counterexamples=("Bearer of good news is here today",),
)

KEY_VALUE_TOKEN = Rule(
    name="secret_key_value",
    entity=Entity.SECRET,
    # Anchored on the ':' or '=' (rare characters); the label before it is checked by refine.
    pattern=r"[:=][ \t]*[A-Za-z0-9_\-.=+/]{20,512}",
    score=0.8,
    validate=_looks_random,
    refine=_after_token_label,
    left_boundary=False,
    requires=(":", "="),
    examples=("API_KEY=Xy7kQ2mN9pL4rT8vW3zA", "client_secret: Xy7kQ2mN9pL4rT8vW3zA"),
    counterexamples=("the key point: everything is fine today",),
)

PASSWORD = Rule(
    name="secret_password",
    entity=Entity.SECRET,
    # Whatever follows a password label and a colon or equals sign is the password.
    pattern=r"[:=][ \t]*[^\s\"'`]{6,128}",
    score=0.85,
    refine=_after_password_label,
    left_boundary=False,
    requires=(":", "="),
    examples=("password: hunter2!", "Mot de passe : Qu3b3c!2024"),
    counterexamples=("forgot my password again", "the password is long"),
)

RULES: tuple[Rule, ...] = (*_KEYED, BEARER_TOKEN, KEY_VALUE_TOKEN, PASSWORD)
