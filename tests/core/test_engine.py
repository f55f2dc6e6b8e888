"""The Engine and its Policy: overlap resolution, entity selection, thresholds, allow- and
deny-lists, user patterns, batch and async calls, language routing, failing detectors, and
policies read from mappings and TOML files.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import veil
from veil import ConfigError, DetectionError, Engine, Policy, Span, UserPattern
from veil.detect import Rule, RuleDetector, resolve_overlaps
from veil.entities import Language

SUPPORT = "Écrivez à support@exemple.ca ou à jean.roy@exemple.ca, ou appelez le 514-555-0199."


def found(engine: Engine, text: str) -> list[tuple[str, str]]:
    """(entity, exact value) of every span reported in `text`."""
    return [(span.entity, text[span.start : span.end]) for span in engine.detect(text)]


@dataclass
class FixedDetector:
    """A detector that reports the same candidate spans for any text."""

    spans: Sequence[Span]
    name: str = "fixed"

    def detect(self, text: str, language: Language) -> list[Span]:
        return list(self.spans)


@dataclass
class RecordingDetector:
    """A detector that finds nothing and remembers the language of each call."""

    name: str = "recording"
    languages: list[str] = field(default_factory=list)

    def detect(self, text: str, language: Language) -> list[Span]:
        self.languages.append(language)
        return []


@dataclass
class BrokenDetector:
    """A detector that fails, with the text in its own error message."""

    name: str = "broken"

    def detect(self, text: str, language: Language) -> list[Span]:
        raise RuntimeError(f"cannot parse {text!r}")


# --- overlap resolution ----------------------------------------------------------------------


def test_of_two_overlapping_spans_the_higher_score_wins_and_the_loser_keeps_only_what_it_alone_covers() -> None:
    low_but_long = Span(0, 20, "PHONE", 0.6)
    high = Span(5, 10, "CA_SIN", 0.9)
    assert resolve_overlaps([low_but_long, high]) == [Span(0, 5, "PHONE", 0.6), high, Span(10, 20, "PHONE", 0.6)]


def test_on_equal_scores_the_longer_span_wins() -> None:
    short = Span(5, 10, "CA_SIN", 0.8)
    long = Span(0, 20, "PHONE", 0.8)
    assert resolve_overlaps([short, long]) == [long]


def test_on_equal_score_and_length_the_more_specific_entity_wins() -> None:
    phone = Span(0, 11, "PHONE", 0.8)
    sin = Span(0, 11, "CA_SIN", 0.8)
    assert resolve_overlaps([phone, sin]) == [sin]
    assert resolve_overlaps([sin, phone]) == [sin]


def test_a_user_entity_ranks_after_the_builtin_ones_on_a_tie() -> None:
    mine = Span(0, 9, "EMPLOYEE_ID", 0.8, "user:emp")
    builtin = Span(0, 9, "LOCATION", 0.8)
    assert resolve_overlaps([mine, builtin]) == [builtin]


def test_touching_spans_do_not_overlap_and_both_are_kept_in_order() -> None:
    second = Span(10, 20, "EMAIL", 0.9)
    first = Span(0, 10, "PHONE", 0.5)
    assert resolve_overlaps([second, first]) == [first, second]


def test_a_part_inside_an_address_gives_way_to_the_address_whatever_its_score() -> None:
    address = Span(0, 40, "ADDRESS", 0.6)
    postal_code = Span(33, 40, "CA_POSTAL_CODE", 0.9)
    assert resolve_overlaps([address, postal_code]) == [address]


def test_an_entity_that_is_not_a_part_of_an_address_competes_with_it_normally() -> None:
    address = Span(0, 40, "ADDRESS", 0.6)
    email = Span(30, 45, "EMAIL", 0.95)
    assert resolve_overlaps([address, email]) == [Span(0, 30, "ADDRESS", 0.6), email]


def test_the_engine_resolves_overlaps_between_detectors() -> None:
    text = "x" * 30
    engine = Engine(detectors=[FixedDetector([Span(0, 20, "PHONE", 0.6), Span(5, 15, "CA_SIN", 0.9)])])
    assert [(s.entity, s.start, s.end) for s in engine.detect(text)] == [
        ("PHONE", 0, 5),
        ("CA_SIN", 5, 15),
        ("PHONE", 15, 20),
    ]


# --- entity selection and thresholds ---------------------------------------------------------


def test_policy_entities_reports_only_those_entities() -> None:
    engine = Engine(Policy(entities=frozenset({"PHONE"})))
    assert found(engine, SUPPORT) == [("PHONE", "514-555-0199")]


def test_policy_exclude_drops_those_entities() -> None:
    engine = Engine(Policy(exclude=frozenset({"EMAIL"})))
    assert found(engine, SUPPORT) == [("PHONE", "514-555-0199")]


def test_exclude_wins_over_entities() -> None:
    engine = Engine(Policy(entities=frozenset({"EMAIL", "PHONE"}), exclude=frozenset({"EMAIL"})))
    assert [entity for entity, _ in found(engine, SUPPORT)] == ["PHONE"]


@pytest.mark.parametrize("option", ["entities", "exclude"])
def test_unknown_entity_names_raise_a_config_error_naming_them(option: str) -> None:
    with pytest.raises(ConfigError, match=rf"policy\.{option}") as error:
        Policy(**{option: frozenset({"EMAIL", "E_MAIL", "TELEPHONE"})})
    assert "E_MAIL" in str(error.value) and "TELEPHONE" in str(error.value)


def test_an_entity_of_a_user_pattern_may_be_selected() -> None:
    pattern = UserPattern("employee", "EMPLOYEE_ID", r"EMP-[0-9]{6}")
    engine = Engine(Policy(entities=frozenset({"EMPLOYEE_ID"}), patterns=(pattern,)))
    assert found(engine, "EMP-123456 a écrit à jean@exemple.ca") == [("EMPLOYEE_ID", "EMP-123456")]


def test_a_threshold_above_the_score_drops_the_entity() -> None:
    engine = Engine(Policy(thresholds={"PHONE": 0.99}))
    assert [entity for entity, _ in found(engine, SUPPORT)] == ["EMAIL", "EMAIL"]


def test_a_threshold_below_the_mode_default_lets_a_weak_match_through_in_permissive_mode() -> None:
    text = "ref 130692544"
    assert found(Engine(Policy(mode="permissive")), text) == []
    engine = Engine(Policy(mode="permissive", thresholds={"CA_SIN": 0.4}))
    assert found(engine, text) == [("CA_SIN", "130692544")]


def test_the_mode_sets_the_default_threshold() -> None:
    assert Policy().threshold < Policy(mode="permissive").threshold
    assert Policy(mode="permissive").threshold_for("PHONE") == Policy(mode="permissive").threshold


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"NOPE": 0.5}, "NOPE"),
        ({"EMAIL": 1.5}, r"thresholds\.EMAIL .*got 1\.5"),
        ({"EMAIL": "high"}, r"thresholds\.EMAIL .*got 'high'"),
        ({"EMAIL": True}, r"thresholds\.EMAIL .*got True"),  # a bool is not a number (it was read as 1.0)
    ],
)
def test_a_bad_threshold_raises_a_config_error_naming_it(thresholds: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Policy(thresholds=thresholds)  # type: ignore[arg-type]


def test_an_unknown_mode_raises_a_config_error_naming_the_modes() -> None:
    with pytest.raises(ConfigError, match="strict, permissive"):
        Policy(mode="lax")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"mode": "lax"}, r"^veil\.toml: policy\.mode must be one of strict, permissive; got 'lax'$"),
        ({"thresholds": {"EMAIL": 2}}, r"^veil\.toml: policy\.thresholds\.EMAIL must be"),
        ({"entities": ["NOPE"]}, r"^veil\.toml: policy\.entities: unknown entity name\(s\) NOPE"),
        ({"entities": "EMAIL"}, r"^veil\.toml: policy\.entities must be a list of strings$"),
    ],
)
def test_a_bad_policy_table_names_where_it_was_read(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Policy.from_mapping(table, where="veil.toml: policy")


# --- allow-list ------------------------------------------------------------------------------


@pytest.mark.parametrize("allowed", ["support@exemple.ca", "SUPPORT@Exemple.CA", "  support@exemple.ca  "])
def test_an_allow_listed_value_is_never_reported(allowed: str) -> None:
    engine = Engine(Policy(allow=frozenset({allowed})))
    assert [value for _, value in found(engine, SUPPORT)] == ["jean.roy@exemple.ca", "514-555-0199"]


def test_allow_list_compares_values_with_blanks_collapsed() -> None:
    engine = Engine(Policy(allow=frozenset({"514  555\t0199"})))
    assert found(engine, "Appelez le 514 555 0199") == []


def test_allow_list_does_not_hide_other_values_that_contain_the_allowed_one() -> None:
    engine = Engine(Policy(allow=frozenset({"exemple.ca"})))
    assert [entity for entity, _ in found(engine, SUPPORT)] == ["EMAIL", "EMAIL", "PHONE"]


# --- deny-list -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["strict", "permissive"])
def test_a_deny_listed_value_is_always_reported_with_its_entity(mode: str) -> None:
    engine = Engine(Policy(mode=mode, deny={"Projet Aurora": "PROJECT"}))  # type: ignore[arg-type]
    text = "Le projet   aurora démarre lundi."
    spans = engine.detect(text)
    assert [(s.entity, text[s.start : s.end], s.score, s.source) for s in spans] == [
        ("PROJECT", "projet   aurora", 1.0, "deny_list")
    ]


@pytest.mark.parametrize("text", ["Auroras du nord", "projetaurora", "l'Aurora2 est prêt", "_aurora_"])
def test_a_deny_listed_value_is_matched_as_a_whole_word_only(text: str) -> None:
    engine = Engine(Policy(deny={"Aurora": "PROJECT"}))
    assert found(engine, text) == []


def test_consecutive_deny_listed_values_are_each_reported() -> None:
    engine = Engine(Policy(deny={"Aurora": "PROJECT", "Borealis": "PROJECT"}))
    assert found(engine, "Aurora Borealis, aurora.") == [
        ("PROJECT", "Aurora"),
        ("PROJECT", "Borealis"),
        ("PROJECT", "aurora"),
    ]


def test_a_deny_listed_value_wins_over_the_builtin_entity_it_overlaps() -> None:
    engine = Engine(Policy(deny={"support@exemple.ca": "SUPPORT_ADDRESS"}))
    assert found(engine, SUPPORT)[0] == ("SUPPORT_ADDRESS", "support@exemple.ca")


@pytest.mark.parametrize(("deny", "message"), [({"x": "lower"}, "UPPER_SNAKE_CASE"), ({"  ": "PROJECT"}, "empty")])
def test_a_bad_deny_list_raises_a_config_error(deny: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Policy(deny=deny)


# --- user patterns ---------------------------------------------------------------------------


def test_a_user_pattern_is_found_with_its_entity_and_source() -> None:
    engine = Engine(Policy(patterns=(UserPattern("employee", "EMPLOYEE_ID", r"EMP-[0-9]{6}"),)))
    text = "L'employé EMP-123456 et EMP-654321."
    spans = engine.detect(text)
    assert [(s.entity, text[s.start : s.end], s.source) for s in spans] == [
        ("EMPLOYEE_ID", "EMP-123456", "user:employee"),
        ("EMPLOYEE_ID", "EMP-654321", "user:employee"),
    ]


def test_a_user_pattern_context_word_raises_its_score() -> None:
    pattern = UserPattern("file", "CASE_ID", r"[0-9]{5}", score=0.5, context=("dossier",), context_boost=0.3)
    engine = Engine(Policy(patterns=(pattern,)))
    with_context, without = engine.detect("dossier 12345"), engine.detect("total 12345")
    assert with_context[0].score == pytest.approx(0.8)
    assert without[0].score == pytest.approx(0.5)


def test_an_invalid_user_regex_raises_a_config_error_naming_the_pattern() -> None:
    with pytest.raises(ConfigError, match=r"policy\.patterns\[0\] \(broken\)"):
        Engine(Policy(patterns=(UserPattern("broken", "X_ID", "EMP-[0-9"),)))


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(?:[0-9]+)*x", r"(a*)*b", r"(?:ab|cd|ab)+"])
def test_a_catastrophic_backtracking_shape_raises_a_config_error(pattern: str) -> None:
    with pytest.raises(ConfigError, match="backtracks catastrophically"):
        Engine(Policy(patterns=(UserPattern("slow", "X_ID", pattern),)))


@pytest.mark.parametrize("pattern", [r"(a|ab)*c", r"(?:foo|foobar)*", r"(\d|\d\d)+x", r"(?:a|[ab]c)*d"])
def test_a_repeated_alternation_whose_branches_start_alike_raises_a_config_error(pattern: str) -> None:
    with pytest.raises(ConfigError, match="backtracks catastrophically"):
        Engine(Policy(patterns=(UserPattern("slow", "X_ID", pattern),)))


@pytest.mark.parametrize("pattern", [r"(?:cat|dog)+", r"(?:[A-Z]+-)+[0-9]{4}", r"[a-z]+(?:\.[a-z]+)*"])
def test_a_repetition_that_cannot_backtrack_catastrophically_is_accepted(pattern: str) -> None:
    Engine(Policy(patterns=(UserPattern("fine", "X_ID", pattern),)))


def test_a_nested_repetition_with_a_separator_is_accepted() -> None:
    engine = Engine(Policy(patterns=(UserPattern("code", "X_ID", r"(?:[A-Z]+-)+[0-9]{4}"),)))
    assert found(engine, "code AB-CD-1234") == [("X_ID", "AB-CD-1234")]


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?P<x>a)(?P=x)", r"EMP-(?=[0-9])"])
def test_a_backreference_or_lookaround_raises_a_config_error_mentioning_re2(pattern: str) -> None:
    with pytest.raises(ConfigError, match="RE2"):
        Engine(Policy(patterns=(UserPattern("fancy", "X_ID", pattern),)))


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (UserPattern("a", "lower_case", "x"), "UPPER_SNAKE_CASE"),
        (UserPattern("a", "X_ID", "x", score=1.5), "score"),
    ],
)
def test_a_bad_user_pattern_raises_a_config_error(pattern: UserPattern, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Policy(patterns=(pattern,))


def test_two_user_patterns_may_not_share_a_name() -> None:
    with pytest.raises(ConfigError, match="share a name"):
        Policy(patterns=(UserPattern("a", "X_ID", "x"), UserPattern("a", "Y_ID", "y")))


# --- batch, async, language ------------------------------------------------------------------


def test_detect_many_gives_one_result_per_text_in_order(strict: Engine) -> None:
    texts = ["jean@exemple.ca", "", "rien ici", "514-555-0199"]
    assert strict.detect_many(texts) == [strict.detect(text) for text in texts]


def test_detect_many_routes_each_text_to_its_own_language() -> None:
    recorder = RecordingDetector()
    Engine(detectors=[recorder]).detect_many(
        ["Bonjour, pouvez-vous mettre à jour mon dossier?", "Please update the file for my account."]
    )
    assert recorder.languages == ["fr", "en"]


@pytest.mark.parametrize("repeat", [1, 500])
def test_adetect_gives_what_detect_gives_for_short_and_long_texts(strict: Engine, repeat: int) -> None:
    text = SUPPORT * repeat
    assert asyncio.run(strict.adetect(text)) == strict.detect(text)


def test_adetect_many_gives_what_detect_many_gives(strict: Engine) -> None:
    texts = [SUPPORT, "rien", SUPPORT * 300]
    assert asyncio.run(strict.adetect_many(texts)) == strict.detect_many(texts)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Bonjour, pouvez-vous mettre à jour mon dossier?", "fr"),
        ("Please update the file for my account.", "en"),
    ],
)
def test_auto_language_routes_the_text_to_its_language(text: str, language: str) -> None:
    recorder = RecordingDetector()
    Engine(detectors=[recorder]).detect(text)
    assert recorder.languages == [language]


def test_an_explicit_language_overrides_auto_routing() -> None:
    recorder = RecordingDetector()
    engine = Engine(detectors=[recorder])
    engine.detect("Please update the file for my account.", language="fr")
    Engine(detectors=[recorder], language="en").detect("Bonjour, pouvez-vous mettre à jour mon dossier?")
    assert recorder.languages == ["fr", "en"]


def test_a_rule_for_one_language_runs_only_on_texts_routed_to_it() -> None:
    rule = Rule(name="dossier", entity="CASE_ID", pattern=r"D-[0-9]{4}", score=0.9, languages=("fr",))
    engine = Engine(detectors=[RuleDetector([rule])])
    assert found(engine, "Bonjour, voici le dossier D-1234 pour vous.") == [("CASE_ID", "D-1234")]
    assert found(engine, "Hello, here is the file D-1234 for you.") == []


@pytest.mark.parametrize("language", ["de", "english", ""])
def test_an_unknown_language_raises_a_config_error(language: str) -> None:
    with pytest.raises(ConfigError, match="en, fr, auto"):
        Engine(language=language)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="en, fr, auto"):
        Engine().detect("texte", language=language)  # type: ignore[arg-type]


def test_empty_text_has_no_spans(strict: Engine) -> None:
    assert strict.detect("") == []


def test_detect_refuses_bytes(strict: Engine) -> None:
    with pytest.raises(TypeError, match="str"):
        strict.detect(b"jean@exemple.ca")  # type: ignore[arg-type]


# --- failing detectors -----------------------------------------------------------------------


def test_a_failing_detector_raises_detection_error_without_the_text() -> None:
    engine = Engine(detectors=[BrokenDetector()])
    secret = "Mon NAS est 130 692 544"
    with pytest.raises(DetectionError) as error:
        engine.detect(secret)
    message = str(error.value)
    assert "broken" in message and "RuntimeError" in message
    assert secret not in message and "130 692 544" not in message
    assert isinstance(error.value.__cause__, RuntimeError)


def test_a_failing_detector_fails_the_whole_call_even_after_others_found_spans() -> None:
    engine = Engine(detectors=[*veil.detect.default_detectors(), BrokenDetector()])
    with pytest.raises(DetectionError):
        engine.detect(SUPPORT)
    with pytest.raises(DetectionError):
        asyncio.run(engine.adetect(SUPPORT * 300))


def test_a_veil_error_from_a_detector_passes_through_unchanged() -> None:
    @dataclass
    class Refusing:
        name: str = "refusing"

        def detect(self, text: str, language: Language) -> list[Span]:
            raise ConfigError("model not configured: set ner.model")

    with pytest.raises(ConfigError, match=r"ner\.model"):
        Engine(detectors=[Refusing()]).detect("texte")


# --- Policy.from_mapping and from_toml -------------------------------------------------------


def test_from_mapping_builds_the_policy_it_describes() -> None:
    policy = Policy.from_mapping(
        {
            "mode": "permissive",
            "entities": ["EMAIL", "PHONE", "EMPLOYEE_ID"],
            "exclude": ["PHONE"],
            "thresholds": {"EMAIL": 0.9},
            "allow": ["support@exemple.ca"],
            "deny": {"Aurora": "PROJECT"},
            "patterns": [{"name": "employee", "entity": "EMPLOYEE_ID", "pattern": "EMP-[0-9]{6}"}],
        }
    )
    assert policy.mode == "permissive" and policy.threshold_for("EMAIL") == 0.9
    assert found(Engine(policy), f"{SUPPORT} EMP-123456") == [
        ("EMAIL", "jean.roy@exemple.ca"),
        ("EMPLOYEE_ID", "EMP-123456"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"mode": "strict", "colour": "blue"}, r"unknown option\(s\) colour"),
        ({"entities": "EMAIL"}, r"policy\.entities must be a list"),
        ({"exclude": [1]}, r"policy\.exclude must be a list"),
        ({"allow": "x"}, r"policy\.allow must be a list"),
        ({"thresholds": [0.5]}, r"policy\.thresholds must be a table"),
        ({"deny": ["Aurora"]}, r"policy\.deny must be a table"),
        ({"patterns": [{"name": "x", "entity": "X_ID"}]}, r"policy\.patterns\[0\]\.pattern is required"),
        ({"patterns": [{"name": "x", "entity": "X_ID", "pattern": "x", "flags": 1}]}, r"patterns\[0\].*flags"),
        ({"patterns": [{"name": "x", "entity": "X_ID", "pattern": "x", "score": "high"}]}, r"patterns\[0\]"),
        ({"patterns": ["EMP-[0-9]+"]}, r"policy\.patterns\[0\] must be a table"),
        ({"mode": "lax"}, r"policy\.mode"),
    ],
)
def test_from_mapping_errors_name_the_option(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Policy.from_mapping(data)


def test_from_toml_reads_the_policy_table(tmp_path: Path) -> None:
    path = tmp_path / "veil.toml"
    path.write_text(
        '[policy]\nmode = "permissive"\nexclude = ["PHONE"]\n\n'
        '[[policy.patterns]]\nname = "employee"\nentity = "EMPLOYEE_ID"\npattern = "EMP-[0-9]{6}"\n',
        encoding="utf-8",
    )
    engine = Engine(Policy.from_toml(path))
    assert found(engine, "EMP-123456, 514-555-0199") == [("EMPLOYEE_ID", "EMP-123456")]


def test_from_toml_without_a_policy_table_gives_the_default_policy(tmp_path: Path) -> None:
    path = tmp_path / "veil.toml"
    path.write_text("[server]\nport = 8080\n", encoding="utf-8")
    assert Policy.from_toml(path) == Policy()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[policy]\ncolour = 1\n", r"veil\.toml: policy: unknown option\(s\) colour"),
        ('[policy]\nentities = ["EMAIL", "NOPE"]\n', "NOPE"),
        ("[policy\n", "not valid TOML"),
        ('policy = "strict"\n', r"\[policy\] must be a table"),
        ("[policy]\nthresholds = {EMAIL = 2}\n", r"thresholds\.EMAIL"),
    ],
)
def test_from_toml_errors_name_the_file_and_the_option(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "veil.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        Policy.from_toml(path)


def test_from_toml_on_a_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.toml does not exist"):
        Policy.from_toml(tmp_path / "absent.toml")


def test_a_phone_equal_to_a_card_chunk_of_an_iban_never_wins_over_the_iban() -> None:
    # Regression (Presidio's IBAN cases): the card candidate ending where the IBAN ends took the
    # IBAN's place as the furthest-reaching shape, and the phone equal to it survived and won.
    text = "IBAN MD24 AG00 0225 1000 1310 4169 please"
    spans = Engine(Policy(ner="off")).detect(text)
    assert [s.entity for s in spans] == ["IBAN"]
