"""Contact details: EMAIL, PHONE, URL, IP_ADDRESS.

Phone numbers are found by one pattern (digits with the usual separators, an optional `+`
and parentheses) and checked with libphonenumber (`phonenumbers`) on the candidate alone, in
the regions that fit: NANP for numbers without a country code, then a few European regions
for numbers that start with a trunk `0`. Presidio runs libphonenumber's matcher once per
region over the whole text; this costs one parse per candidate instead.

Traps handled here: an IPv4 address or a date is never a phone; chunks of an IBAN or a card
lose to the longer, checksummed span in the engine's overlap resolution.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

from veil.detect.rules.base import Rule, remembered_per_scan
from veil.detect.rules.checksums import digits_of
from veil.entities import Entity

_SEPARATORS = " \u00a0\u202f.-"

# --- EMAIL -----------------------------------------------------------------------------------

_BEFORE_LOCAL_PART = re.compile(r"(?s:.*)[^\w.%+\-]")
"""Up to the last character that cannot be part of an e-mail's local part: one backward step a
character of the local part, where a search for the local part tries every start in the window."""


def _extend_back_over_local_part(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The pattern starts at the `@` (a rare character, so the scan is fast); add the local part
    (at most 64 characters)."""
    low = max(0, start - 64)
    before = _BEFORE_LOCAL_PART.match(text, low, start)
    local_start = before.end() if before is not None else low
    while local_start < start and text[local_start] in ".-+%":
        local_start += 1  # a local part starts with a letter, digit or underscore
    if local_start == start:
        return None
    return local_start, end


EMAIL = Rule(
    name="email",
    entity=Entity.EMAIL,
    # @, one or more labels, a TLD of letters; the lookahead keeps a trailing dot out.
    # The TLD is letters, or an internationalised one in punycode (xn--p1ai).
    pattern=r"@(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+(?:[^\W\d_]{2,24}|xn--[a-z0-9\-]{2,59})(?![\w\-])",
    score=0.95,
    refine=_extend_back_over_local_part,
    left_boundary=False,
    requires=("@",),
    examples=("jean.tremblay@exemple.qc.ca", "a_b+tag@mail.example.com", "émilie@courriel.ca"),
    counterexamples=("contact us @ the office", "user@localhost", "the @ sign"),
)

# --- PHONE -----------------------------------------------------------------------------------

_PHONE_CONTEXT = (
    "phone",
    "telephone",
    "tel",
    "cell",
    "cellphone",
    "mobile",
    "call",
    "reach",
    "fax",
    "téléphone",
    "tél",
    "cellulaire",
    "appelez",
    "appeler",
    "joindre",
    "portable",
)

_IPV4_SHAPE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_GROUP_SPLIT = re.compile(r"[ \u00a0\u202f.\-]+")
_NANP_VALID = ("CA", "US")
_NANP_DIGIT_COUNTS = frozenset({7, 10, 11})
_TRUNK_REGIONS = ("FR", "BE", "CH", "GB", "DE", "NL", "ES", "IT")


_NUMBER_TYPES = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number", "voip",
                 "pager", "uan", "voicemail")  # fmt: skip


@lru_cache(maxsize=1)
def _nanp_pattern() -> re.Pattern[str]:
    """libphonenumber's own patterns for the numbers assigned in Canada and the United States,
    as one compiled regex over the ten national digits: the same answer as
    `is_valid_number_for_region` (checked against it in the tests), at a hundredth of the cost."""
    from phonenumbers import PhoneMetadata  # noqa: PLC0415 - 20 ms of import, paid on first use

    patterns = []
    for region in _NANP_VALID:
        metadata = PhoneMetadata.metadata_for_region(region)
        for number_type in _NUMBER_TYPES:
            description = getattr(metadata, number_type, None)
            if description is not None and description.national_number_pattern:
                patterns.append(description.national_number_pattern)
    return re.compile("(?:" + "|".join(patterns) + ")")


def _nanp_assigned(national: str) -> bool:
    """Whether a ten-digit North American number is assigned in Canada or the United States."""
    return _nanp_pattern().fullmatch(national) is not None


@remembered_per_scan
def _phone_validity(candidate: str) -> int:
    """2 for a valid number, 1 for a merely possible one, 0 otherwise.

    Remembered for one scan only: a run of digit groups ("0 0 0 0 …") is read as a candidate at
    each of its digits, each asking libphonenumber about the same runs of groups again (thousands
    of times slower than prose without it). Not cached across scans: a process-wide cache
    would keep the last thousands of phone numbers seen, of every tenant, for the process's
    lifetime, and saved nothing measurable on chat messages (callgrind: 574 K instructions a
    message with a 4,096-entry cache, 572 K without)."""
    digits = digits_of(candidate)
    if candidate.startswith("+") and not candidate.startswith("+1"):
        return _international_validity(candidate, (None,))
    if digits.startswith("0") and not digits.startswith("011") and not candidate.startswith("+"):
        # A European number written with its trunk 0. Nine digits or fewer is more often a
        # Canadian identifier with a leading zero than a Belgian landline: leave those alone.
        return _international_validity(candidate, _TRUNK_REGIONS) if len(digits) >= 10 else 0
    # North American numbering: NXX NXX XXXX, after an optional 1. The shape is checked here and
    # the exchange looked up once; libphonenumber's parser (~50 µs) is never needed.
    national = digits[1:] if len(digits) == 11 and digits[0] == "1" else digits
    if candidate.startswith("+") and len(digits) != 11:
        return 0
    if len(national) == 7:
        return 1  # a local number without its area code: possible, never valid
    if len(national) != 10:
        return 0
    if national[0] in "01" or national[3] in "01":
        return 1  # the right length, not an assignable number
    return 2 if _nanp_assigned(national) else 1


def _international_validity(candidate: str, regions: tuple[str | None, ...]) -> int:
    import phonenumbers  # noqa: PLC0415

    digits = digits_of(candidate)
    best = 0
    dialled_out: set[str] = set()
    for region in regions:
        if region is not None and not _length_possible(region, digits):
            continue  # libphonenumber would say "not possible" after a ~50 µs parse
        prefix = _dialling_out(region, digits) if region is not None else None
        if prefix in dialled_out:
            continue  # the same number as for an earlier region: its answer is already in `best`
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            number = None
        if prefix is not None:
            dialled_out.add(prefix)
        if number is None:
            continue
        if phonenumbers.is_valid_number(number):
            return 2
        if phonenumbers.is_possible_number(number):
            best = 1
    return best


def _dialling_out(region: str, digits: str) -> str | None:
    """The international prefix of `region` the digits start with, when a country code follows it
    (its first digit is not 0): the number is then read from its country code alone, and is the
    same for every region dialling out with that prefix ("00" in all of _TRUNK_REGIONS)."""
    known = _national_lengths(region)
    if known is None:
        return None
    for prefix in known[2]:
        if digits.startswith(prefix) and len(digits) > len(prefix) and digits[len(prefix)] != "0":
            return prefix
    return None


_PREFIX_ALTERNATIVES = re.compile(r"[0-9]+(?:\|[0-9]+)*")


@lru_cache(maxsize=64)
def _national_lengths(region: str) -> tuple[frozenset[int], int, tuple[str, ...]] | None:
    """The lengths libphonenumber accepts for a national number of `region` (local-only ones
    included), the most digits its parser may strip as a national prefix, and the region's
    international prefixes; None when a prefix rule is not a plain list of digit strings (then
    every number is left to the parser)."""
    from phonenumbers import PhoneMetadata  # noqa: PLC0415

    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.general_desc is None:
        return None
    description = metadata.general_desc
    lengths = frozenset((*(description.possible_length or ()), *(description.possible_length_local_only or ())))
    national = metadata.national_prefix_for_parsing or metadata.national_prefix or ""
    international = metadata.international_prefix or ""
    if not lengths or not all(_PREFIX_ALTERNATIVES.fullmatch(p) for p in (national, international) if p):
        return None
    stripped = max(len(p) for p in national.split("|")) if national else 0
    return lengths, stripped, tuple(international.split("|")) if international else ()


def _length_possible(region: str, digits: str) -> bool:
    """False only when no national number of `region` can have these digits, prefix stripped or
    not (a number dialled with the international prefix is left to the parser)."""
    known = _national_lengths(region)
    if known is None:
        return True
    lengths, most_stripped, international = known
    if any(digits.startswith(prefix) for prefix in international):
        return True
    digit_count = len(digits)
    return any(digit_count - stripped in lengths for stripped in range(most_stripped + 1))


_PHONE_GROUP = re.compile(r"\+?\(?([0-9]+)\)?")


def _inside_dashed_number(text: str, start: int, end: int) -> bool:
    """True when text[start:end] is cut out of a longer dash- or dot-joined number (a date, an id)."""
    before = text[start - 2 : start] if start >= 2 else ""
    after = text[end : end + 2]
    return (len(before) == 2 and before[1] in "-." and before[0].isdigit()) or (
        len(after) == 2 and after[0] in "-." and after[1].isdigit()
    )


_PHONE_GROUP_PARTS = re.compile(r"(\+?\(?)([0-9]+)")
"""The groups of _PHONE_GROUP as (what opens the group, its digits), for `findall`."""


def _refine_phone(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Find the phone number inside a greedy candidate: the longest run of digit groups (each
    with its own parentheses) that libphonenumber accepts, valid before merely possible. The
    pattern may have glued a neighbouring number, or a sentence's parenthesis, to the phone."""
    candidate = text[start:end]
    if "." in candidate and _IPV4_SHAPE.fullmatch(candidate):
        return None
    # Most candidates are a phone as written, or plainly not one: decide those without the search.
    groups = _PHONE_GROUP_PARTS.findall(candidate)
    counts = [len(digits) for _, digits in groups]
    # A valid phone has 7, 10 or 11 digits or opens with +, ( or 0, so the whole candidate can
    # only be one when the search below would try it: "130 692 544" is neither, and stops here.
    if sum(counts) < 7 or not _may_hold_a_phone(groups, counts):
        return None
    if (
        candidate.count("(") == candidate.count(")")
        and not _inside_dashed_number(text, start, end)
        and _phone_validity(candidate) == 2
    ):
        return start, end
    return _longest_phone_inside(text, start, end)


def _may_hold_a_phone(groups: list[tuple[str, str]], counts: list[int]) -> bool:
    """Whether `_longest_phone_inside` would try any run of groups: one of seven digits or more,
    with 7, 10 or 11 of them or opening with a country code, a parenthesis or a trunk 0."""
    for first in range(min(len(groups), 3)):
        opening, digits = groups[first]
        special = bool(opening) or digits[0] == "0"
        total = 0
        for count in counts[first:]:
            total += count
            if total >= 7 and (special or total in _NANP_DIGIT_COUNTS):
                return True
    return False


def _longest_phone_inside(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The search of `_refine_phone`: runs of groups from one of the first three, longest first."""
    candidate = text[start:end]
    groups = []
    digits_before = [0]
    for group in _PHONE_GROUP.finditer(candidate):
        groups.append(group.span())
        digits_before.append(digits_before[-1] + group.end(1) - group.start(1))
    best: tuple[int, int] | None = None
    best_validity = 0
    for first in range(min(len(groups), 3)):
        for last in range(len(groups) - 1, first - 1, -1):
            count = digits_before[last + 1] - digits_before[first]
            if count < 7:
                break
            sub_start, sub_end = groups[first][0], groups[last][1]
            if count not in _NANP_DIGIT_COUNTS and candidate[sub_start] not in "+0(":
                continue  # without a country code or a trunk 0, a phone has 7, 10 or 11 digits
            sub = candidate[sub_start:sub_end]
            if sub.count("(") != sub.count(")"):
                continue  # "514) 555-0199": a parenthesis that belongs to the sentence
            if _inside_dashed_number(text, start + sub_start, start + sub_end):
                continue  # "07-03 (514) 555" cut out of "1995-07-03 (514) 555-0199"
            validity = _phone_validity(sub)
            if validity > best_validity:
                best, best_validity = (start + groups[first][0], start + groups[last][1]), validity
                if validity == 2:
                    return best
    return best


_PHONE_CHARACTERS = frozenset("0123456789 \u00a0\u202f().-")
"""What a phone candidate is made of after its first character (see PHONE's pattern)."""


def _phone_pieces_only(text: str, start: int, end: int) -> bool:
    """Whether `_refine_phone` can only keep a piece strictly inside this candidate (or nothing),
    and no later candidate can run past its end: it does not open with +, ( or 0 and has neither
    7, 10 nor 11 digits, so the whole candidate is never tried as a phone (a card's digits), and
    the character after it cannot continue a phone."""
    candidate = text[start:end]
    if candidate[0] in "+0(" or len(digits_of(candidate)) in _NANP_DIGIT_COUNTS:
        return False
    return end == len(text) or text[end] not in _PHONE_CHARACTERS


def _phone_is_valid(value: str) -> bool:
    return _phone_validity(value) == 2


PHONE = Rule(
    name="phone",
    entity=Entity.PHONE,
    pattern=r"[+(]?[0-9][0-9 \u00a0\u202f().\-]{5,22}[0-9](?![0-9])",
    score=0.75,
    context=_PHONE_CONTEXT,
    context_boost=0.2,
    validate=_phone_is_valid,
    invalid_score=0.3,  # possible but not valid: strict mode only
    refine=_refine_phone,
    pieces_only=_phone_pieces_only,
    examples=("(514) 555-0199", "+1 438 555 0142", "1-819-555-0100", "+33 1 42 68 53 00", "06 12 34 56 78"),
    counterexamples=("192.168.10.20", "Order 48213 is pending", "at 10:30 on 2024-03-01"),
)

# --- URL -------------------------------------------------------------------------------------

_URL_BODY = r"[^\s<>\"'`{}|\\^\[\]]+"
_URL_TRAILING = ".,;:!?'\"»"
_URL_SCHEMES = ("http", "https", "ftp", "sftp", "ws", "wss")
_URL_SCHEME = re.compile(r"(?<![A-Za-z])(?:" + "|".join(_URL_SCHEMES) + r")\Z", re.IGNORECASE)
# Right after "://": a scheme of _URL_SCHEMES (not the tail of a word) stands before it. One
# fixed-width lookbehind per scheme, as `re` requires.
_AFTER_A_SCHEME = "(?:" + "|".join(f"(?<=(?<![A-Za-z])(?i:{scheme})://)" for scheme in _URL_SCHEMES) + ")"


def _trim_url(text: str, start: int, end: int) -> tuple[int, int] | None:
    value = text[start:end]
    while value and (value[-1] in _URL_TRAILING or (value[-1] == ")" and value.count("(") < value.count(")"))):
        value = value[:-1]
    if len(value) < 8:
        return None
    return start, start + len(value)


def _extend_back_over_scheme(text: str, start: int, end: int) -> tuple[int, int] | None:
    scheme = _URL_SCHEME.search(text, max(0, start - 5), start)
    if scheme is None:
        return None
    return _trim_url(text, scheme.start(), end)


URL = Rule(
    name="url",
    entity=Entity.URL,
    # Anchored on "://" (a fast literal scan), then extended back over the scheme. The lookbehinds
    # let it start only after a scheme: "a://a://…" would otherwise be read to its end from every
    # "://" in it, and refused each time (quadratic in its length).
    pattern="://" + _AFTER_A_SCHEME + _URL_BODY,
    score=0.8,
    refine=_extend_back_over_scheme,
    left_boundary=False,
    requires=("://",),
    examples=("https://exemple.ca/dossier?id=42", "HTTP://EXAMPLE.COM/A", "ftp://files.example.org/x"),
    counterexamples=("http:// nothing", "see ://here"),
)

URL_WWW = Rule(
    name="url_www",
    entity=Entity.URL,
    # The lookbehind keeps the scan from starting inside a word: "wwww.wwww.…" would otherwise be
    # read to its end from every "www." in it, quadratic in its length.
    pattern=r"(?<!\w)www\." + _URL_BODY,
    score=0.8,
    refine=_trim_url,
    requires=("www.",),
    examples=("www.example.com/path",),
    counterexamples=("visit the www",),
)

# --- IP_ADDRESS ------------------------------------------------------------------------------

_IP_CONTEXT = ("ip", "address", "adresse", "login", "connexion", "connection", "server", "serveur", "host")


def _refine_ipv4(text: str, start: int, end: int) -> tuple[int, int] | None:
    # "v1.2.3.4.5" and "1.2.3.4.5": part of a longer dotted number, not an address.
    if start >= 2 and text[start - 1] == "." and text[start - 2].isdigit():
        return None
    return start, end


def _ipv4_is_valid(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


IPV4 = Rule(
    name="ipv4",
    entity=Entity.IP_ADDRESS,
    pattern=r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?![0-9]|\.[0-9])",
    score=0.85,
    context=_IP_CONTEXT,
    context_boost=0.1,
    validate=_ipv4_is_valid,
    refine=_refine_ipv4,
    examples=("192.168.10.20", "8.8.8.8", "225.88.187.115"),
    counterexamples=("999.1.1.1", "version 1.2.3.4.5", "3.14"),
)


def _refine_ipv6(text: str, start: int, end: int) -> tuple[int, int] | None:
    if start > 0 and text[start - 1] in ":.":
        return None  # the tail of a longer (and so invalid) colon-separated run: "2001::db8::1"
    value = text[start:end]
    # A sentence colon right after the address ("…::1: down") is not part of it.
    while value.endswith(":") and not value.endswith("::"):
        value = value[:-1]
    groups = [g for g in re.split(r"[:.]", value) if g]
    if len(groups) < 2 or value.count(":") < 2:
        return None
    return start, start + len(value)


def _ipv6_is_valid(value: str) -> bool:
    try:
        address = ipaddress.IPv6Address(value.split("%", 1)[0])
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified)


IPV6 = Rule(
    name="ipv6",
    entity=Entity.IP_ADDRESS,
    # An embedded IPv4 tail (::ffff:192.0.2.1) is part of the address: the lookahead refuses to
    # stop before ".digit", so the IPv4 alternative gets its chance. Every run is bounded (an
    # address has at most 39 characters, 45 with an IPv4 tail): an unbounded `[0-9A-Fa-f:]*`
    # ran to the end of "F:F:F:…" from every start, quadratic in the length of such a run.
    pattern=(
        r"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:]{0,31}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3})?"
        r"(?:%[0-9A-Za-z]{1,32})?(?![0-9A-Za-z:]|\.[0-9])"
    ),
    score=0.85,
    context=_IP_CONTEXT,
    context_boost=0.1,
    validate=_ipv6_is_valid,
    refine=_refine_ipv6,
    requires=(":",),
    precheck=r":[0-9A-Fa-f]{0,4}:",  # two colons close together: "10:30" is not worth the pattern
    examples=("2001:db8:85a3::8a2e:370:7334", "fe80::1ff:fe23:4567:890a", "::ffff:192.0.2.128"),
    counterexamples=("at 10:30:45 sharp", "ratio 3:2:1", "Note: see below"),
)

RULES: tuple[Rule, ...] = (EMAIL, PHONE, URL, URL_WWW, IPV4, IPV6)
