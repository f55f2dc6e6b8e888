"""Canary personal data, and the scanner that looks for them wherever personal data must never be.

A canary is a distinctive, valid value of one kind of personal data (the card passes Luhn, the SIN
and the IBAN their checksums, the RAMQ number its date check), so that veil detects it and any copy
of it left in a log, a metric, an error message or a stored row is certainly a leak, never chance.
Tests that send personal data through veil use these values (tests/server/gateway_setup.py takes
its CANARIES from here).

`Scanner.find(text)` says which canaries a text contains, as written and in the trivially encoded
forms a leak takes on its way (see `Canary.forms`). `SCANNER` is the session's scanner: the
canary plugin (tests/canary_plugin.py) feeds it every log record of the test run, the output of
the servers that tests start in subprocesses, and the /metrics pages of the gateways they serve,
and fails the run if anything was found.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus


@dataclass(frozen=True, slots=True)
class Canary:
    name: str
    value: str
    extra: tuple[str, ...] = ()
    """Other ways the value is written (a phone number without its country code)."""

    def forms(self) -> dict[str, str]:
        """Case-insensitive needles: form name → text (searched in the casefolded haystack)."""
        found = {"plain": self.value}
        compact = "".join(c for c in self.value if c.isalnum() or c in "@._")
        if compact != self.value:
            found["compact"] = compact
        for n, other in enumerate(self.extra):
            found[f"also-{n}"] = other
        found["url-quoted"] = quote(self.value, safe="")
        found["form-quoted"] = quote_plus(self.value)
        found["json-escaped"] = json.dumps(self.value)[1:-1]
        unique: dict[str, str] = {}
        for name, needle in found.items():
            if needle.casefold() not in {n.casefold() for n in unique.values()}:
                unique[name] = needle
        return unique

    def base64_forms(self) -> list[str]:
        """Case-sensitive needles: the value in base64 at each of the three byte alignments it can
        have inside a longer base64 string (the characters that depend on its bytes only)."""
        data = self.value.encode()
        needles = []
        for pad in range(3):
            encoded = base64.b64encode(b"\0" * pad + data).decode()
            first = -(-8 * pad // 6)  # the first character made of the value's bits only
            last = (8 * (pad + len(data))) // 6  # one past the last such character
            needles.append(encoded[first:last])
        return needles


CANARY_LIST = (
    Canary("email", "marie.tremblay@exemple.qc.ca"),
    Canary("phone", "+1 514 872 3456", extra=("514 872 3456", "5148723456", "514-872-3456")),
    Canary("sin", "130 692 544"),
    Canary("card", "4111 1111 1111 1111"),
    Canary("iban", "FR76 3000 6000 0112 3456 7890 189"),
    Canary("ramq", "TREM 8557 1412"),
    Canary("name", "Marie Tremblay"),
    Canary("address", "1234 rue Sherbrooke Est, Montréal H2X 1K9"),
)
CANARIES = {canary.name: canary.value for canary in CANARY_LIST}
"""name → value, for tests that build texts."""

CANARY_TEXT = (
    f"Bonjour, je suis Marie. Écrivez-moi à {CANARIES['email']} ou appelez le {CANARIES['phone']}. "
    f"Mon NAS est {CANARIES['sin']} et ma carte {CANARIES['card']}."
)
"""The four values every rule detects without NER (the server tests run with NER off)."""

FULL_CANARY_TEXT = (
    f"Bonjour, je suis {CANARIES['name']}. Écrivez-moi à {CANARIES['email']} ou appelez le {CANARIES['phone']}. "
    f"Mon NAS est {CANARIES['sin']}, ma carte {CANARIES['card']}, mon IBAN {CANARIES['iban']}, "
    f"ma carte RAMQ {CANARIES['ramq']}. J'habite au {CANARIES['address']}."
)
"""Every canary (the name needs NER)."""


@dataclass(frozen=True, slots=True)
class Finding:
    source: str
    """Where it was seen: `log veil_server`, `subprocess veil serve`, `/metrics` …"""
    canary: str
    form: str
    where: str
    """The test running when it was seen (or `session`)."""
    excerpt: str
    """The text around it, with the canary itself masked (the report must not leak it again)."""


class Scanner:
    """Looks for canaries in texts and bytes; counts what it has scanned and keeps what it found."""

    def __init__(self, canaries: Iterable[Canary] = CANARY_LIST) -> None:
        self.canaries = tuple(canaries)
        self._folded = [(c.name, form, needle.casefold()) for c in self.canaries for form, needle in c.forms().items()]
        self._exact = [
            (c.name, f"base64-{n}", needle) for c in self.canaries for n, needle in enumerate(c.base64_forms())
        ]
        self._bytes = [(c.name, "utf-16", c.value.encode("utf-16-le")) for c in self.canaries]
        self.findings: list[Finding] = []
        self.counts: dict[str, int] = {}
        self.allowed = 0
        """Texts with a canary that an exemption allowed (see tests/canary_plugin.py)."""
        self.where = "session"
        self._lock = threading.Lock()

    def find(self, text: str) -> list[tuple[str, str]]:
        """(canary, form) of every canary in `text`."""
        folded = text.casefold()
        hits = [(name, form) for name, form, needle in self._folded if needle in folded]
        hits += [(name, form) for name, form, needle in self._exact if needle in text]
        return hits

    def find_bytes(self, data: bytes) -> list[tuple[str, str]]:
        """As `find`, on raw bytes (a database file): UTF-8 text, and UTF-16 for good measure."""
        hits = self.find(data.decode("utf-8", "replace"))
        hits += [(name, form) for name, form, needle in self._bytes if needle in data]
        return hits

    def mask(self, text: str) -> str:
        masked = text
        for canary in self.canaries:
            for needle in (*canary.forms().values(), *canary.base64_forms()):
                index = masked.casefold().find(needle.casefold())
                while index >= 0:
                    masked = masked[:index] + f"<{canary.name.upper()}>" + masked[index + len(needle) :]
                    index = masked.casefold().find(needle.casefold())
        return masked

    def observe(
        self, source: str, text: str, *, kind: str = "log records", allowed: bool = False
    ) -> list[tuple[str, str]]:
        """Scan one text seen at `source`, count it under `kind`, and keep what is found (unless
        `allowed`: an exemption of the plugin's, counted apart)."""
        hits = self.find(text)
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if hits and allowed:
                self.allowed += 1
                return hits
            for name, form in hits:
                excerpt = self.mask(text)
                self.findings.append(Finding(source, name, form, self.where, excerpt[:300]))
        return hits

    def tally(self, kind: str, count: int) -> None:
        """Count what a test scanned by itself (stored values …), for the session's summary line."""
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + count

    def report(self) -> str:
        lines = [f"{len(self.findings)} canary value(s) found where personal data must never be:"]
        lines += [f"  [{f.source}] {f.canary} ({f.form}) during {f.where}: {f.excerpt!r}" for f in self.findings[:50]]
        if len(self.findings) > 50:
            lines.append(f"  … and {len(self.findings) - 50} more")
        return "\n".join(lines)

    def export(self) -> dict[str, object]:
        """What this scanner counted and found, as plain data (a pytest-xdist worker hands it to the
        controller, whose scanner `absorb`s it)."""
        with self._lock:
            return {
                "counts": dict(self.counts),
                "allowed": self.allowed,
                "findings": [(f.source, f.canary, f.form, f.where, f.excerpt) for f in self.findings],
            }

    def absorb(self, exported: dict[str, object]) -> None:
        with self._lock:
            for kind, count in dict(exported["counts"]).items():  # type: ignore[call-overload]
                self.counts[kind] = self.counts.get(kind, 0) + count
            self.allowed += int(exported["allowed"])  # type: ignore[call-overload]
            self.findings += [Finding(*row) for row in exported["findings"]]  # type: ignore[attr-defined]

    def summary(self) -> str:
        scanned = ", ".join(f"{count} {kind}" for kind, count in sorted(self.counts.items())) or "nothing"
        exempted = f" ({self.allowed} allowed by an exemption)" if self.allowed else ""
        return f"scanned {scanned} for {len(self.canaries)} canaries{exempted}"


SCANNER = Scanner()
"""The test session's scanner (fed by tests/canary_plugin.py and the server helpers)."""


@dataclass
class StoredValues:
    """Every value read raw out of a store, with where it came from, for `assert_no_canary`."""

    items: list[tuple[str, str | bytes]] = field(default_factory=list)

    def add(self, where: str, value: object) -> None:
        if value is None:
            return
        if isinstance(value, bytes | bytearray | memoryview):
            self.items.append((where, bytes(value)))
        else:
            self.items.append((where, str(value)))


def canaries_in(values: StoredValues, scanner: Scanner | None = None) -> list[str]:
    """`where: canary (form)` for each stored value that holds a canary (counted in SCANNER's
    summary: values, and places, a table's column, a Redis key, a file)."""
    SCANNER.tally("stored values", len(values.items))
    SCANNER.tally("stored places", len({where for where, _ in values.items}))
    scanner = scanner or Scanner()
    found = []
    for where, value in values.items:
        hits = scanner.find_bytes(value) if isinstance(value, bytes) else scanner.find(value)
        found += [f"{where}: {name} ({form})" for name, form in hits]
    return found
