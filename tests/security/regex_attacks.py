"""Adversarial inputs for regular expressions, and the patterns veil runs.

A backtracking engine (Python's `re`) is linear on a pattern only if no input makes it try many
ways to match the same characters, or retry a long match from every start position. Rather than
trust a reading of each pattern, the tests run each one on inputs built to provoke that, at two
sizes, and compare the times: linear code takes about ten times longer on ten times the text.

The inputs are built from the pattern's own characters (its literals and a representative of
each class), so that they reach deep into it: runs of one character, of a character and a
separator, the rule's own examples glued together or cut short by one character (near misses,
which make a pattern try and fail at every position), and a seeded random mixture.
"""

from __future__ import annotations

import importlib
import itertools
import pkgutil
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import veil
from veil.detect import regex_ast
from veil.detect.rules import BUILTIN_RULES, Rule, RuleDetector

SCREEN = 2_000  # the size at which the most expensive input of a target is picked
SMALL = 10_000
LARGE = 100_000
MAX_RATIO = 15.0

# Modules whose import loads a heavy optional dependency: their patterns are checked when they
# are part of a rule; the modules themselves are not walked.
_SKIPPED_MODULES = ("veil.detect.ner.spacy", "veil.detect.ner.gliner", "veil.detect.ner.presidio", "veil.crypto.pkcs11")


@dataclass(frozen=True)
class Target:
    """Something that scans a text: a compiled pattern, or a detector."""

    name: str
    scan: Callable[[str], object]
    characters: str
    examples: tuple[str, ...] = ()
    prefix: str = ""
    """The literal text every match starts with, if any ("eyJ", "www."): glued to itself, it
    offers a start position every few characters."""


def literal_prefix(pattern: str, flags: int = 0) -> str:
    """The literal characters a pattern starts with (after any zero-width assertion)."""
    c = regex_ast.constants
    prefix = []
    for op, av in regex_ast.parse(pattern, flags):
        if op in (c.ASSERT, c.ASSERT_NOT, c.AT):
            continue
        if op is not c.LITERAL:
            break
        prefix.append(chr(av))
    return "".join(prefix)


def _characters_of(pattern: str, flags: int = 0) -> str:
    """The literals of a pattern and one or two representatives of each character class."""
    c = regex_ast.constants
    found: dict[str, None] = {}

    def add(ch: str) -> None:
        found.setdefault(ch)

    def walk(items: Any) -> None:
        for op, av in items:
            if op is c.LITERAL or op is c.NOT_LITERAL:
                add(chr(av))
            elif op is c.IN:
                for item_op, item_av in av:
                    if item_op is c.LITERAL:
                        add(chr(item_av))
                    elif item_op is c.RANGE:
                        add(chr(item_av[0]))
                        add(chr(item_av[1]))
                    elif item_op is c.CATEGORY:
                        walk([(c.CATEGORY, item_av)])
            elif op is c.CATEGORY:
                name = str(av)
                if "DIGIT" in name:
                    add("7")
                elif "SPACE" in name:
                    add(" ")
                elif "WORD" in name:
                    add("a")
                    add("_")
            elif op is c.ANY:
                add("a")
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
                walk(av[2])
            elif op is c.SUBPATTERN:
                walk(av[3])
            elif op in (c.ASSERT, c.ASSERT_NOT):
                walk(av[1])
            elif op is c.BRANCH:
                for branch in av[1]:
                    walk(branch)
            elif op is c.GROUPREF_EXISTS:
                walk(av[1])
                if av[2]:
                    walk(av[2])

    walk(regex_ast.parse(pattern, flags))
    for ch in "a7 .":  # a letter, a digit, a blank and a dot: the texts most patterns meet
        add(ch)
    return "".join(found)


def attacks(target: Target, size: int, *, thorough: bool = False) -> Iterator[tuple[str, str]]:
    """(label, text of `size` characters) for each adversarial input of `target`."""

    def fill(unit: str) -> str:
        return (unit * (size // len(unit) + 1))[:size]

    chars = target.characters
    separators = [ch for ch in chars if not ch.isalnum()][:6] or [" "]
    alnum = [ch for ch in chars if ch.isalnum()][:8] or ["a"]
    for ch in chars if thorough else chars[:12]:
        yield f"run of {ch!r}", fill(ch)
    for letter, separator in itertools.product(alnum[:4] if not thorough else alnum, separators):
        yield f"{letter!r} and {separator!r}", fill(letter + separator)
        yield f"{letter!r}x4 and {separator!r}", fill(letter * 4 + separator)
    if target.prefix:
        yield f"prefix {target.prefix!r} glued", fill(target.prefix)
        yield f"prefix {target.prefix!r} and a letter", fill(target.prefix + "a")
    for example in target.examples[: None if thorough else 2]:
        yield f"example {example!r} glued", fill(example)
        yield f"example {example!r} spaced", fill(example + " ")
        if len(example) > 1:
            yield f"example {example!r} cut short", fill(example[:-1] + " ")
            yield f"example {example!r} cut, glued", fill(example[:-1])
    rng = random.Random(size)  # the same mixture at both sizes
    pool = chars + "  "
    yield "random mixture", "".join(rng.choice(pool) for _ in range(size))


def scan_seconds(scan: Callable[[str], object], text: str, repeat: int) -> float:
    """The fastest of `repeat` full scans, in CPU time of this process: other processes on a
    shared machine do not count, and the minimum drops what they still disturb (caches)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        scan(text)
        best = min(best, time.process_time() - start)
    return best


def _finditer(regex: re.Pattern[str]) -> Callable[[str], object]:
    def scan(text: str) -> object:
        return sum(1 for _ in regex.finditer(text))

    return scan


def _match(regex: re.Pattern[str]) -> Callable[[str], object]:
    def scan(text: str) -> object:
        return regex.match(text)

    return scan


ANCHORED: dict[str, str] = {
    # Module-level patterns that are only matched at one position or searched in a bounded
    # window: one call must be linear (checked with `match`), but they never scan a whole text.
    "veil.detect.context._CLAUSE_END": "searched in the context window around a match",
    "veil.detect.context._YEAR": "searched in the context window before a match",
    "veil.detect.fusion.PROVINCE_OR_POSTAL": "matched right after a candidate address",
    "veil.detect.fusion._ADDRESS_JOIN": "matched right after an address",
    "veil.detect.fusion._CAPITALISED": "fullmatched against one word",
    "veil.detect.fusion._NOT_A_PERSON": "searched in one candidate name",
    "veil.detect.fusion._PERSON_AFTER": "matched after a candidate name",
    "veil.detect.fusion._PERSON_BEFORE": "searched in the few words before a candidate name",
    "veil.detect.fusion._SUFFIX": "matched right after a candidate name",
    "veil.detect.fusion._TITLE": "searched in the 16 characters before a candidate name",
    "veil.detect.fusion._WORD_AFTER": "matched in the 40 characters after a candidate name",
    "veil.detect.fusion._WORD_BEFORE": "searched in the 40 characters before a candidate name",
    "veil.detect.policy._ENTITY_NAME": "fullmatched against a configured entity name",
    "veil.detect.rules.address.PROVINCE_OR_POSTAL": "matched right after a candidate address",
    "veil.detect.rules.contact._BEFORE_LOCAL_PART": "matched in the 64 characters before an @",
    "veil.detect.rules.contact._IPV4_SHAPE": "fullmatched against one phone candidate",
    "veil.detect.rules.contact._PREFIX_ALTERNATIVES": "fullmatched against a dialling prefix",
    "veil.detect.rules.contact._URL_SCHEME": "searched in the 5 characters before ://",
    "veil.detect.rules.dates._MONTH_BEFORE": "searched in the 12 characters before a day",
    "veil.detect.rules.dates._MONTH_FIRST": "fullmatched against one date candidate",
    "veil.detect.rules.dates._WRITTEN_DAY_FIRST": "fullmatched against one date candidate",
    "veil.detect.rules.secrets._BEARER_WORD": "matched inside one secret candidate",
    "veil.detect.rules.secrets._PASSWORD_LABEL_BEFORE": "matched on the label before a secret",
    "veil.detect.rules.secrets._TOKEN_LABEL_BEFORE": "matched on the label before a secret",
    "veil.restore.TOKEN_RE": "fullmatched against one token",
    "veil.session.TOKEN_RE": "fullmatched against one token",
    "veil.tokens.TOKEN_RE": "fullmatched against one token",
    "veil.vault.postgres._SCHEMA_NAME": "fullmatched against a configured schema name",
}
"""Every other module-level pattern is taken to scan whole texts (finditer), the strict case."""


def _rule_examples(rule: Rule) -> tuple[str, ...]:
    return tuple(rule.examples) + tuple(rule.counterexamples)


def builtin_targets() -> list[Target]:
    """Every pattern veil compiles: each rule alone (as the detector runs it: its pass, refiner
    and validator), each rule's raw pattern, prechecks and gates, the combined passes of the
    whole rule set, every module-level pattern of the core (restore, context words, fusion,
    language guess …), and the code paths that run them over a whole text."""
    targets: list[Target] = []
    seen: set[tuple[str, int, str]] = set()

    def add_regex(name: str, regex: re.Pattern[str], examples: tuple[str, ...] = (), *, anchored: bool = False) -> None:
        key = (regex.pattern, regex.flags, "match" if anchored else "scan")
        if key in seen:
            return
        seen.add(key)
        scan = _match(regex) if anchored else _finditer(regex)
        characters = _characters_of(regex.pattern, regex.flags & ~re.UNICODE)
        prefix = literal_prefix(regex.pattern, regex.flags & ~re.UNICODE)
        targets.append(Target(name, scan, characters, examples, prefix))

    for rule in BUILTIN_RULES:
        examples = _rule_examples(rule)
        detector = RuleDetector([rule])
        language = "en" if "en" in rule.languages else rule.languages[0]
        characters = _characters_of(rule.pattern, rule.flags)
        prefix = literal_prefix(rule.pattern, rule.flags)
        targets.append(
            Target(f"rule {rule.name}", partial(detector.detect, language=language), characters, examples, prefix)
        )
        add_regex(f"pattern of {rule.name}", re.compile(rule.pattern, rule.flags), examples)
        if rule.precheck:
            add_regex(f"precheck of {rule.name}", re.compile(rule.precheck))
        if rule.gate:
            add_regex(f"gate of {rule.name}", re.compile(rule.gate))
    all_examples = tuple(example for rule in BUILTIN_RULES for example in rule.examples)
    detector = RuleDetector(BUILTIN_RULES)
    for index, scan in enumerate(detector._passes):
        for regex in (scan.gate, scan.scanner, scan.single.regex if scan.single else None):
            if regex is not None:
                add_regex(f"pass {index} of the built-in rules", regex, all_examples)
    for module in _core_modules():
        for attribute, value in sorted(vars(module).items()):
            if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
                name = f"{module.__name__}.{attribute}"
                add_regex(name, value, anchored=name in ANCHORED)
    targets.extend(_code_paths(all_examples))
    return targets


def _code_paths(examples: tuple[str, ...]) -> list[Target]:
    """The functions that run patterns over a whole text, on the characters of every rule."""
    from veil.detect.fusion import name_bearing_runs
    from veil.detect.language import guess_language, language_segments
    from veil.detect.ner.lexicon import COMMON_WORDS
    from veil.restore import Restorer, StreamingRestorer

    characters = "".join(dict.fromkeys("".join(examples) + "{}_\\ .!?\n"))
    engine = veil.Engine(veil.Policy(ner="off"))
    values = {"{{EMAIL_1}}": "jean@exemple.ca", "{{PERSON_12}}": "Jean Roy"}
    restorer = Restorer(values.get, known=lambda: list(values), lenient=True)

    def stream(text: str) -> object:
        streaming = StreamingRestorer(restorer)
        out = [streaming.feed(text[i : i + 4096]) for i in range(0, len(text), 4096)]
        return "".join(out) + streaming.flush()

    token_examples = (*examples[:4], "{{EMAIL_1}}", "{{ email_1 }}", "PERSON_12", "{{PERSON_")
    return [
        Target("Engine.detect (rules, strict)", engine.detect, characters, examples),
        Target(
            "fusion.name_bearing_runs (sentences for NER)",
            lambda text: name_bearing_runs(text, [(0, len(text), "en")], COMMON_WORDS, COMMON_WORDS.known),
            characters + "ABCÉ",
            ("Jean Roy.", "M. Tremblay!", "...", "?!"),
        ),
        Target("language.guess_language", guess_language, characters + "éèàç", examples),
        Target("language.language_segments", lambda text: language_segments(text, "en"), characters, examples),
        Target("Restorer.restore", restorer.restore, "{}_\\ EMAILPERSON1 2a", token_examples),
        Target("StreamingRestorer (4 KB chunks)", stream, "{}_\\ EMAILPERSON1 2a", token_examples),
    ]


def _core_modules() -> Iterator[Any]:
    for info in pkgutil.walk_packages(veil.__path__, "veil."):
        if info.name.startswith(_SKIPPED_MODULES):
            continue
        try:
            yield importlib.import_module(info.name)
        except ImportError:  # an optional backend whose dependency is absent
            continue
