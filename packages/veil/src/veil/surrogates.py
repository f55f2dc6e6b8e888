"""Realistic surrogates: fake values in place of real ones, for models that handle names and
numbers better than placeholders.

`{{PERSON_3}}` becomes "Chloé Gagnon", `{{EMAIL_1}}` "chloe.gagnon1@example.com". Each
surrogate is a pure function of (entity, number), distinct for distinct numbers, so one value
keeps one surrogate in a scope and two values never share one. Where a reserved range exists,
surrogates come from it and can never be a real value: e-mails and URLs under `example.com`
(RFC 2606), phone numbers in the fictional 555-01XX range, IP addresses in the documentation
ranges (RFC 5737, RFC 3849), SINs starting with 0 (never issued), card numbers outside every
issuer range (they still pass Luhn), IBANs with bank code 00000. Entities without a generator
keep a `{{ENTITY_N}}` token.

Restoring surrogates (`SurrogateRestorer`) finds them as words, also inside possessives
("Chloé Gagnon's") and plurals ("the Gagnons"), and finds a person's surname or given name used
alone when the real name has the same parts.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection, Mapping

from veil.restore import HoldBackStream
from veil.tokens import format_token

FIRST_NAMES = """Chloé Jean Marie Luc Émilie Noah Olivia Félix Léa William Zoé Thomas Alice Samuel Rosalie
Gabriel Florence Nathan Juliette Antoine Charlotte Louis Camille Raphaël Maëlle Jacob Ève Liam Mila Henri""".split()
LAST_NAMES = """Gagnon Tremblay Roy Côté Bouchard Gauthier Morin Lavoie Fortin Gagné Ouellet Pelletier Bélanger
Lévesque Bergeron Leblanc Paquette Girard Simard Boucher Caron Beaulieu Cloutier Dubé Poirier Fournier""".split()
_AREA_CODES = (
    """514 438 450 579 418 581 819 873 367 263 416 647 437 613 343 905 289 365 604 778 236 403 587 780""".split()
)
_ASCII = str.maketrans("éèêëàâäîïôöûüùçÉÈÊÀÂÎÔÛÇ", "eeeeaaaiioouuucEEEAAIOUC")


def _person_parts(number: int) -> tuple[str, str, int]:
    index = number - 1
    first = FIRST_NAMES[index % len(FIRST_NAMES)]
    last = LAST_NAMES[(index // len(FIRST_NAMES)) % len(LAST_NAMES)]
    return first, last, index // (len(FIRST_NAMES) * len(LAST_NAMES))


def person(number: int) -> str:
    first, last, round_ = _person_parts(number)
    return f"{first} {last}" if round_ == 0 else f"{first} {last}-{LAST_NAMES[round_ % len(LAST_NAMES)]}"


def email(number: int) -> str:
    first, last, _ = _person_parts(number)
    return f"{first.translate(_ASCII).lower()}.{last.translate(_ASCII).lower()}{number}@example.com"


def phone(number: int) -> str:
    index = number - 1
    area = _AREA_CODES[(index // 100) % len(_AREA_CODES)]
    # 555-0100 … 555-0199 is reserved for fiction in every area code; past 2 400 numbers, an extension.
    line = 100 + index % 100
    block = index // (100 * len(_AREA_CODES))
    return f"({area}) 555-{line:04d}" if block == 0 else f"({area}) 555-{line:04d} x{block}"


def _luhn(payload: str) -> str:
    total = 0
    for index, ch in enumerate(reversed(payload)):
        digit = int(ch) * (2 if index % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return payload + str((10 - total % 10) % 10)


def sin(number: int) -> str:
    digits = _luhn(f"0{number:07d}"[-8:])  # no SIN is issued with a leading 0
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def card(number: int) -> str:
    digits = _luhn(f"00{number:013d}"[-15:])  # MII 0: no issuer, still Luhn-valid
    return " ".join(digits[i : i + 4] for i in range(0, 16, 4))


def iban(number: int) -> str:
    bank, branch, account = "00000", "00000", f"{number:011d}"[-11:]
    rib_key = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97
    bban = f"{bank}{branch}{account}{rib_key:02d}"
    check = 98 - int("".join(str(int(ch, 36)) for ch in bban + "FR00")) % 97
    compact = f"FR{check:02d}{bban}"
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def ip_address(number: int) -> str:
    blocks = ("192.0.2.", "198.51.100.", "203.0.113.")
    index = number - 1
    if index < 254 * len(blocks):
        return f"{blocks[index // 254]}{index % 254 + 1}"
    return f"2001:db8::{number:x}"


def url(number: int) -> str:
    return f"https://example.com/r/{number}"


def date(number: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=number * 37)).isoformat()


def postal_code(number: int) -> str:
    # Z is never the first letter of a Canadian postal code.
    letters = "ABCEGHJKLMNPRSTVWXYZ"
    index = number - 1
    first = f"Z{index % 10}{letters[(index // 10) % 20]}"
    return f"{first} {(index // 200) % 10}{letters[index % 20]}{(index // 2000) % 10}"


def address(number: int) -> str:
    return f"{number * 10} rue de l'Exemple, Montréal (Québec) {postal_code(number)}"


GENERATORS: Mapping[str, Callable[[int], str]] = {
    "PERSON": person,
    "EMAIL": email,
    "PHONE": phone,
    "CA_SIN": sin,
    "CREDIT_CARD": card,
    "IBAN": iban,
    "IP_ADDRESS": ip_address,
    "URL": url,
    "DATE": date,
    "DATE_OF_BIRTH": date,
    "CA_POSTAL_CODE": postal_code,
    "ADDRESS": address,
}


def make_surrogate(entity: str, number: int) -> str:
    """The surrogate of the `number`-th value of `entity`, or a token where there is no generator.

    >>> make_surrogate("PERSON", 1), make_surrogate("EMAIL", 1), make_surrogate("CA_SIN", 1)
    ('Chloé Gagnon', 'chloe.gagnon1@example.com', '000 000 018')
    >>> make_surrogate("FR_NIR", 2)
    '{{FR_NIR_2}}'
    """
    generator = GENERATORS.get(entity)
    return generator(number) if generator is not None else format_token(entity, number)


_SUFFIX = r"(?=(?:['’]s|s|es)?(?![\w]))"


class SurrogateRestorer:
    """Replaces the surrogates of a scope by the values they stand for."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        """`mapping`: surrogate → real value."""
        pairs: dict[str, str] = dict(mapping)
        # A person's parts, when the real name has as many: "Gagnon" alone → the real surname.
        for surrogate, value in mapping.items():
            surrogate_parts, value_parts = surrogate.split(), value.split()
            if len(surrogate_parts) > 1 and len(surrogate_parts) == len(value_parts) and surrogate[:1].isalpha():
                for fake, real in zip(surrogate_parts, value_parts, strict=True):
                    if len(fake) > 2:
                        pairs.setdefault(fake, real)
        self._pairs = pairs
        alternatives = sorted(pairs, key=len, reverse=True)
        self._regex = (
            re.compile(r"(?<![\w])(?:" + "|".join(re.escape(a) for a in alternatives) + ")" + _SUFFIX)
            if alternatives
            else None
        )

    def restore(self, text: str, start: int = 0, escape: Callable[[str], str] | None = None) -> tuple[str, int]:
        """`text[start:]` with its surrogates replaced (what precedes `start` is context only)."""
        if self._regex is None:
            return text[start:], 0
        pieces: list[str] = []
        position = start
        count = 0
        for match in self._regex.finditer(text, start):
            value = self._pairs[match.group(0)]
            pieces.append(text[position : match.start()])
            pieces.append(escape(value) if escape is not None else value)
            position = match.end()
            count += 1
        pieces.append(text[position:])
        return "".join(pieces), count

    @property
    def surrogates(self) -> Collection[str]:
        return self._pairs.keys()


class SurrogateStreamingRestorer(HoldBackStream):
    """Streaming restore of surrogates: holds back only a suffix that could still be (the start
    of) a surrogate with its possessive or plural ending; emits the rest at once."""

    def __init__(self, restorer: SurrogateRestorer, *, escape: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self._restorer = restorer
        self._escape = escape
        endings = ("", "'s", "’s", "s", "es")
        self._prefixes = frozenset(
            (form + ending)[:end]
            for form in restorer.surrogates
            for ending in endings
            for end in range(1, len(form) + len(ending) + 1)
        )
        self._longest = max((len(p) for p in self._prefixes), default=0)

    def _cut(self, buffer: str) -> int:
        for index in range(max(0, len(buffer) - self._longest), len(buffer)):
            before = buffer[index - 1] if index > 0 else self._previous
            if before and (before.isalnum() or before == "_"):
                continue
            if buffer[index:] in self._prefixes:
                return index
        return len(buffer)

    def _restore(self, text: str, start: int) -> tuple[str, int]:
        return self._restorer.restore(text, start, self._escape)
