"""Fusion: reconcile what the models (NER) found with what the rules found.

    rule spans ─┐
                ├→ fuse → spans for the overlap resolution (engine.resolve_overlaps)
    NER spans ──┘

Models are good at finding a name and poor at its edges and at typing it; rules are exact on
structured data. So, in this order:

1. NER spans are trimmed to words (no trailing comma or quote) and thrown out when they cannot
   be names: digits, '@', '://', no letter at all.
2. What an accepted rule span covers is the rule's: the user part of an e-mail is not a
   PERSON, a street name inside an ADDRESS is not a PERSON, "IT07" of an IBAN is no ORG. The
   whole words of a NER span outside every rule span stay the model's ("Jean Tremblay" of a
   span "Jean Tremblay 514" that runs into a phone number).
3. Two or more capitalised words typed ORGANIZATION or LOCATION are retyped PERSON when a
   person cue surrounds them (a title, "the file for …", "mon médecin est …", "…, born").
4. PERSON spans grow to the whole name: a title before (Mr., Mme, Dr, Me), a suffix after
   (Jr., MD, PhD), neighbouring capitalised words the model left out.
5. A title followed by capitalised words ("Dr Sébastien Poirier", "Mrs. Hayley Dunn") is a
   PERSON even when the model missed it.
6. A PERSON (or LOCATION) of one word is weak evidence. A common word of the language
   ("Pouvez", "Bonjour", "Thanks") starting a sentence is never one; elsewhere, a common word
   is dropped in permissive mode and kept with a low score in strict mode.
7. ADDRESS spans of the rules (civic number + street) are completed through the city, province
   and postal code that follow them ("…, Springfield, Illinois 62704").

Every step looks at a few characters around a span, so fusion is linear in the text; spans are
never mutated, only replaced.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from veil.detect.rules.address import PROVINCE_OR_POSTAL
from veil.entities import Entity, Language, Span

CommonWord = Callable[[str, Language], bool]
"""Tells whether a lower-cased word is a common word of the language (not a name)."""

NER_SOURCE_TYPES = frozenset({Entity.PERSON, Entity.LOCATION, Entity.ORGANIZATION})

PERSON_SCORE = 0.85
SINGLE_WORD_SCORE = 0.6
CUE_BONUS = 0.1
RETYPED_SCORE = 0.8
WEAK_SCORE = 0.3

_TITLE_WORDS = frozenset(
    "Mr Mrs Ms Mx Miss Dr Dre Prof Pr Sir Dame Rev Mgr M Mme Mmes Mlle Mlles MM Me Monsieur Madame Mademoiselle "
    "Maître Docteur Docteure".split()
)
_TITLE = re.compile(
    r"(?:(?<=\s)|^)(?:Mr|Mrs|Ms|Mx|Miss|Dr|Dre|Prof|Pr|Sir|Dame|Rev|Mgr|M|Mme|Mmes|Mlle|Mlles|MM|Me|"
    r"Monsieur|Madame|Mademoiselle|Maître|Docteur|Docteure)\.?[ \u00a0]+$"
)
_NAME_WORD = r"[A-ZÀ-ÖØ-Þ][^\W\d_]+(?:['’-][A-ZÀ-ÖØ-Þ]?[^\W\d_]+)*"
_NAME_WORDS = rf"(?P<name>{_NAME_WORD}(?:[ \u00a0]{_NAME_WORD}){{0,2}})"
_TITLED_NAME: dict[str, re.Pattern[str]] = {
    "en": re.compile(rf"(?<![\w.])(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof)\.?[ \u00a0]+{_NAME_WORDS}"),
    "fr": re.compile(rf"(?<![\w.])(?:M|Mme|Mlle|Me|Dr|Dre|Pr|Mr|Mrs|Ms)\.?[ \u00a0]+{_NAME_WORDS}"),
}
_SUFFIX = re.compile(r",?[ \u00a0]+(?:Jr|Sr|II|III|IV|MD|DDS|DVM|DMD|PhD|Ph\.D|CPA|Esq|RN|fils|père)\.?(?![\w])")
_PERSON_BEFORE = re.compile(
    r"(?:\b(?:name|named|called|dear|hi|hello|for|from|by|to|with|contact|client|customer|patient|"
    r"mr|mrs|ms|dr|doctor|lawyer|manager|agent|adviser|advisor|colleague|representative|"
    r"nom|nommée?|appelée?|ici|cher|chère|bonjour|salut|madame|monsieur|client|cliente|patiente?|"
    r"médecin|docteure?|avocate?|notaire|gestionnaire|conseill(?:er|ère)|agente?|collègue|représentante?|"
    r"dossier de|au nom de|de la part de|signé|this is|i am|i'm|c'est|je suis|je m'appelle|"
    r"(?:parler|parlé|écrire|écrit|demander|demandé|répondre|répondu|envoyer|envoyé|transférer|transféré) à|"
    r"contacter|contacté|appeler|rappeler|talk to|speak to|spoke to|spoke with|talked to|ask|asked|tell|told|call|"
    r"called|email|e-mail|cc)"
    r"(?:[ \u00a0]+(?:is|was|est|était|:))?[ \u00a0:,]*)$",
    re.IGNORECASE,
)
_PERSON_AFTER = re.compile(
    r"^(?:,?[ \u00a0]*\(?(?:born|né|née|aged|âgée?|dob|date of birth|date de naissance)\b|"
    r"[ \u00a0]+(?:a appelé|a écrit|called|wrote|said|says|a dit))",
    re.IGNORECASE,
)
_NOT_A_PERSON = re.compile(
    r"\b(?:Inc|Ltd|LLC|Corp|Co|Ltée|Limitée|Bank|Banque|Caisse|University|Université|College|Collège|Hospital|"
    r"Hôpital|Clinic|Clinique|Group|Groupe|Company|Compagnie|Foundation|Fondation|Ministry|Ministère|City|Ville|"
    r"Street|Avenue|Road|Rue|Boulevard|Chemin|Lake|Lac|River|Rivière|Park|Parc|Centre|Center|Services?)\b\.?"
)
# Labels of identifiers that models take for organisations ("SIN 130 692 544").
_IDENTIFIER_LABELS = frozenset(
    "SIN NAS SSN IBAN BIC SWIFT RAMQ OHIP NIR DOB DDN PIN NIP IP URL ID VAT TVA TPS TVQ CVV CVC BSN DNI NIE".split()
)
_WORD = re.compile(r"[^\W\d_][\w'’]*(?:-[^\W\d_][\w'’]*)*")
_WORD_BEFORE = re.compile(r"([A-ZÀ-ÖØ-Þ][^\W\d_]+(?:['’-][^\W\d_]+)*)[ \u00a0]$")
_WORD_AFTER = re.compile(r"(?:[ \u00a0]|-)([A-ZÀ-ÖØ-Þ][^\W\d_]+(?:['’-][^\W\d_]+)*)")
_CAPITALISED = re.compile(r"[A-ZÀ-ÖØ-Þ][^\W\d_]*(?:['’-][^\W\d_]+)*")
_SENTENCE_END = frozenset('.!?:;\n\r•*-–—"“«>([')
_STRIP = " \t\r\n\u00a0,.;:!?\"'“”«»()[]{}<>"
_CUE_WINDOW = 40
_MAX_NAME_WORDS = 4
_ADDRESS_JOIN = re.compile(r",?[ \u00a0]+(?:(?:à|in|at)[ \u00a0]+)?|[ \u00a0]*,?[ \u00a0]*(?=\()")


def fuse(
    text: str,
    rule_spans: Sequence[Span],
    ner_spans: Iterable[Span],
    *,
    language: Language,
    mode: str,
    common_word: CommonWord,
) -> list[Span]:
    """The rule spans (addresses completed) and the NER spans that survive steps 1–6."""
    blockers = sorted(rule_spans, key=lambda s: s.start)
    starts = [s.start for s in blockers]
    ends = _running_max_ends(blockers)

    def overlaps_rule(start: int, end: int) -> bool:
        index = bisect.bisect_left(starts, end) - 1
        return index >= 0 and ends[index] > start

    def outside_rules(span: Span) -> Iterable[Span]:
        """The whole words of `span` that no rule span covers (all of it when none overlaps)."""
        index = bisect.bisect_left(starts, span.end) - 1
        if index < 0 or ends[index] <= span.start:
            yield span
            return
        covered: list[tuple[int, int]] = []
        while index >= 0 and ends[index] > span.start:
            blocker = blockers[index]
            if blocker.end > span.start and blocker.start < span.end:
                covered.append((blocker.start, blocker.end))
            index -= 1
        position = span.start
        for start, end in sorted(covered):
            if start > position:
                yield from _whole_words(text, replace(span, start=position, end=start))
            position = max(position, end)
        if position < span.end:
            yield from _whole_words(text, replace(span, start=position, end=span.end))

    kept: list[Span] = []
    for found in ner_spans:
        for piece in outside_rules(found):
            # What a rule span covers is the rule's (the user part of an e-mail is no PERSON);
            # the words beside it are still the model's: "Jean Tremblay" of a span "Jean
            # Tremblay 514" that runs into a phone number is kept, not dropped with it.
            remainder = _trim(text, piece)
            if remainder is not None:
                scored = _fuse_one(
                    text, remainder, language=language, mode=mode, common_word=common_word, overlaps_rule=overlaps_rule
                )
                if scored is not None:
                    kept.append(scored)
    kept.extend(_titled_names(text, kept, language, overlaps_rule))
    # Only places that survived (no digits, no overlap with a rule span) may complete an address:
    # an "FR76" the model calls a place must not carry an address into the IBAN after it.
    if not any(s.entity == Entity.ADDRESS for s in blockers):
        return [*blockers, *kept]
    ends_at = _AddressEnds(
        locations=[s for s in kept if s.entity == Entity.LOCATION],
        rules=blockers,
    )
    completed = [_complete_address(text, s, ends_at) if s.entity == Entity.ADDRESS else s for s in blockers]
    return completed + kept


def _fuse_one(
    text: str,
    trimmed: Span,
    *,
    language: Language,
    mode: str,
    common_word: CommonWord,
    overlaps_rule: Callable[[int, int], bool],
) -> Span | None:
    if text[trimmed.start : trimmed.end].lower().rstrip(".") in _UNIT_WORDS:
        return None  # "Suite" of "Suite 881" that the model read apart from the address
    span = _retype(text, trimmed)
    if span.entity == Entity.PERSON:
        span = _grow_person(text, span, language, common_word, overlaps_rule)
    return _score_single_word(text, span, language, mode, common_word)


def _whole_words(text: str, span: Span) -> Iterable[Span]:
    """`span` when it does not start or end inside a word (a rule cut "Tremblay514" is no name)."""
    start, end = span.start, span.end
    if start > 0 and text[start - 1].isalnum() and text[start].isalnum():
        return
    if end < len(text) and text[end - 1].isalnum() and text[end].isalnum():
        return
    yield span


def _titled_names(
    text: str, found: Sequence[Span], language: Language, overlaps_rule: Callable[[int, int], bool]
) -> Iterable[Span]:
    """PERSON spans for "title + capitalised words" that no kept span covers yet (one pass)."""
    titles = _TITLED_NAME[language]
    if titles.search(text) is None:
        return
    covered = sorted(found, key=lambda s: s.start)
    starts = [s.start for s in covered]
    ends = _running_max_ends(covered)
    for match in titles.finditer(text):
        end = match.end("name")
        index = bisect.bisect_left(starts, end) - 1
        if (index >= 0 and ends[index] > match.start()) or overlaps_rule(match.start(), end):
            continue
        yield Span(match.start(), end, Entity.PERSON, PERSON_SCORE, "titles")


# A sentence ends at . ! ? followed by a blank (not the dot of "example.net"), or at a line break.
# Written with possessive loops over runs that cannot overlap: a lazy `[^\n]*?` before `[.!?]+(?=\s)` retried
# the whole run of dots at every dot, quadratic on "......" (tests/security/test_regex_linear_time.py).
_SENTENCE = re.compile(r"(?:[^\n.!?]++|[.!?]++(?![.!?\s]))*+(?:[.!?]+(?=\s)|\n+|$)")


def name_bearing_runs(
    text: str,
    runs: Sequence[tuple[int, int, Language]],
    common_word: CommonWord,
    known_word: CommonWord | None = None,
) -> list[tuple[int, int, Language]]:
    """The parts of `runs` a NER model needs to read: the sentences that could hold a name.

    A sentence could hold one when it has a capitalised word that is not a common word opening
    the sentence ("Thanks.", "Virez le solde." have none). When `known_word` is given (strict
    mode), also when it has no capital at all (its writer gives no clue), or a lower-case word
    that is not in the language's dictionary ("Please call jean tremblay": "tremblay"). Tokens
    with digits, '@' or '/' (numbers, e-mails, URLs: the rules' business) do not count.
    Whatever a model would find elsewhere is dropped by fusion anyway, so skipping those
    sentences saves model time and loses nothing but a lower-case name that is also a
    dictionary word, in a sentence that capitalises its other words. Linear.
    """
    kept: list[tuple[int, int, Language]] = []
    for run_start, run_end, language in runs:
        for sentence in _SENTENCE.finditer(text, run_start, run_end):
            start, end = sentence.span()
            if start == end or not _could_hold_a_name(
                text, start, end, language, common_word=common_word, known_word=known_word
            ):
                continue
            if kept and kept[-1][1] == start and kept[-1][2] == language:
                kept[-1] = (kept[-1][0], end, language)
            else:
                kept.append((start, end, language))
    return kept


# Words that name a unit of an address, never a name or a place on their own.
_UNIT_WORDS = frozenset("suite ste apt apartment unit floor app appartement bureau unité local".split())
_TOKEN = re.compile(r"\S+")
# Tokens with a digit, '@' or a slash: numbers, e-mails, URLs (the rules' business).
_NOT_A_WORD = re.compile(r"[\d@/\\]")
_WEEKDAYS = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday "
    "lundi mardi mercredi jeudi vendredi samedi dimanche".split()
)
_ELISION = re.compile(r"^(?:[ldjmnstc]|qu|jusqu|lorsqu|puisqu)['’](?=\w)", re.IGNORECASE)
_EDGE_PUNCTUATION = "\"'“”«»()[]{}<>,.;:!?*…"


def _could_hold_a_name(
    text: str, start: int, end: int, language: Language, *, common_word: CommonWord, known_word: CommonWord | None
) -> bool:
    sentence = text[start:end]
    # `s != s.lower()`: has a capital letter (a test in C; this gate runs on every sentence).
    if sentence == sentence.lower():
        # A writer who uses no capitals gives no clue: read the sentence (strict mode). Without
        # a capital, permissive fusion would keep no name, so the model need not read it.
        return known_word is not None and any(c.isalpha() for c in sentence)
    for token in _TOKEN.finditer(text, start, end):
        raw = token.group()
        if known_word is None and raw == raw.lower():
            continue  # permissive mode reads capitalised words only
        if _NOT_A_WORD.search(raw):
            continue
        word = _ELISION.sub("", raw.strip(_EDGE_PUNCTUATION))
        if not word or not word[0].isalpha():
            continue
        lower = word.lower()
        if word[0].isupper():
            if word.upper() in _IDENTIFIER_LABELS or lower in _WEEKDAYS:
                continue
            if not _sentence_initial(text, token.start()) or not common_word(lower, language):
                return True
        elif known_word is not None and not any(known_word(part, language) for part in (lower, *lower.split("-"))):
            return True
    return False


def _running_max_ends(spans: Sequence[Span]) -> list[int]:
    ends: list[int] = []
    for span in spans:
        ends.append(max(span.end, ends[-1]) if ends else span.end)
    return ends


def _trim(text: str, span: Span) -> Span | None:
    start, end = span.start, span.end
    while start < end and text[start] in _STRIP:
        start += 1
    while end > start and text[end - 1] in _STRIP:
        # Keep the dot of an initial or an abbreviation ("John F.", "Jr.").
        if (
            text[end - 1] == "."
            and end - 2 >= start
            and text[end - 2].isalpha()
            and not text[end - 3 : end - 2].isalpha()
        ):
            break
        end -= 1
    value = text[start:end]
    if not value or "@" in value or "://" in value or not any(c.isalpha() for c in value):
        return None
    if span.entity == Entity.PERSON and any(c.isdigit() for c in value):
        return None
    if span.entity == Entity.LOCATION and any(c.isdigit() for c in value):
        # "Illinois 62704": the place is the words before the number (the rules read the ZIP).
        digit = next(i for i, c in enumerate(value) if c.isdigit())
        head = value[:digit].rstrip(_STRIP)
        if not head or " " not in value[:digit] or not any(c.isalpha() for c in head):
            return None
        end = start + len(head)
        value = head
    if value.upper() in _IDENTIFIER_LABELS:
        return None
    return span if (start, end) == (span.start, span.end) else replace(span, start=start, end=end)


def _words(value: str) -> list[str]:
    return _WORD.findall(value)


def _all_capitalised(value: str) -> bool:
    words = value.split()
    return bool(words) and all(_CAPITALISED.fullmatch(w.rstrip(".,")) for w in words)


def _person_cue(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - _CUE_WINDOW) : start]
    after = text[end : end + _CUE_WINDOW]
    return bool(
        _TITLE.search(before) or _PERSON_BEFORE.search(before) or _PERSON_AFTER.match(after) or _SUFFIX.match(after)
    )


def _retype(text: str, span: Span) -> Span:
    if span.entity not in (Entity.ORGANIZATION, Entity.LOCATION):
        return span
    value = text[span.start : span.end]
    words = value.split()
    if not 2 <= len(words) <= _MAX_NAME_WORDS or not _all_capitalised(value) or _NOT_A_PERSON.search(value):
        return span
    if not _person_cue(text, span.start, span.end):
        return span
    return replace(span, entity=Entity.PERSON, score=RETYPED_SCORE)


def _sentence_initial(text: str, start: int) -> bool:
    index = start - 1
    while index >= 0 and text[index] in " \t\u00a0":
        index -= 1
    return index < 0 or text[index] in _SENTENCE_END


def _grow_person(
    text: str, span: Span, language: Language, common_word: CommonWord, overlaps_rule: Callable[[int, int], bool]
) -> Span:
    start, end = span.start, span.end
    count = len(text[start:end].split())
    # Neighbouring capitalised words the model left out ("Jean" of "Jean Tremblay", "Goulet" of
    # "Cloutier-Goulet"), never across a rule span, a sentence start or a common word.
    while count < _MAX_NAME_WORDS:
        match = _WORD_AFTER.match(text, end, end + 40)
        if (
            not match
            or _SUFFIX.match(text, end)
            or common_word(match.group(1).lower(), language)
            or overlaps_rule(end, match.end())
        ):
            break
        end = match.end()
        count += 1
    while count < _MAX_NAME_WORDS and not _sentence_initial(text, start):
        match = _WORD_BEFORE.search(text, max(0, start - 40), start)
        # A capitalised word that starts a sentence is more often a verb ("Ask Rose") than a name.
        if not match or _sentence_initial(text, match.start()):
            break
        word = match.group(1)
        if word in _TITLE_WORDS or common_word(word.lower(), language) or overlaps_rule(match.start(), start):
            break
        start = match.start()
        count += 1
    title = _TITLE.search(text[max(0, start - 16) : start])
    cue = bool(title) or _person_cue(text, start, end)
    if title:
        start -= len(title.group(0))
    suffix = _SUFFIX.match(text, end)
    if suffix:
        end = suffix.end()
    score = max(span.score, PERSON_SCORE if count > 1 else span.score)
    if cue:
        score = min(0.95, score + CUE_BONUS)
    if (start, end, score) == (span.start, span.end, span.score):
        return span
    return replace(span, start=start, end=end, score=score)


def _score_single_word(text: str, span: Span, language: Language, mode: str, common_word: CommonWord) -> Span | None:
    value = text[span.start : span.end]
    if not any(c.isupper() for c in value):
        # Names are written with a capital; a lower-case "name" is a guess.
        return None if mode == "permissive" else replace(span, score=min(span.score, WEAK_SCORE))
    words = _words(value)
    if len(words) != 1 or " " in value.strip() or span.entity == Entity.ORGANIZATION:
        return span
    word = words[0].lower()
    if common_word(word, language):
        if mode == "permissive" or _sentence_initial(text, span.start):
            return None
        return replace(span, score=min(span.score, WEAK_SCORE))
    if span.entity == Entity.PERSON and not _person_cue(text, span.start, span.end):
        return replace(span, score=min(span.score, SINGLE_WORD_SCORE))
    return span


class _AddressEnds:
    """What an address may run on into, built once per text: the places and postal codes by their
    start, and the other rule spans it must never reach into (bisect, so many addresses in one long
    text cost no more each than in a short one)."""

    __slots__ = ("_location_at", "_other_ends", "_other_starts", "_postal_at")

    def __init__(self, *, locations: Iterable[Span], rules: Sequence[Span]) -> None:
        self._location_at = {s.start: s for s in locations}
        self._postal_at = {s.start: s for s in rules if s.entity == Entity.CA_POSTAL_CODE}
        others = sorted((s for s in rules if s.entity != Entity.CA_POSTAL_CODE), key=lambda s: s.start)
        self._other_starts = [s.start for s in others]
        self._other_ends = _running_max_ends(others)

    def known_at(self, at: int) -> Span | None:
        """The place or postal code that starts at `at`, if any."""
        return self._location_at.get(at) or self._postal_at.get(at)

    def hits_other_rule(self, start: int, end: int) -> bool:
        """Whether [start, end) overlaps a rule span that is not a postal code."""
        index = bisect.bisect_left(self._other_starts, end) - 1
        return index >= 0 and self._other_ends[index] > start


def _complete_address(text: str, address: Span, ends_at: _AddressEnds) -> Span:
    """Extend a street address through the city, province and postal code that follow it."""
    end = address.end
    for _ in range(4):
        join = _ADDRESS_JOIN.match(text, end)
        if join is None:
            break
        at = join.end()
        nxt = ends_at.known_at(at)
        match = None if nxt is not None else PROVINCE_OR_POSTAL.match(text, at)
        reach = nxt.end if nxt is not None else match.end() if match is not None else None
        # Never into another rule span: an address that overlapped an IBAN would lose to it whole.
        # (The address itself ends at or before `at`, so it never counts as one.)
        if reach is None or ends_at.hits_other_rule(at, reach):
            break
        end = reach
    return address if end == address.end else replace(address, end=end)
