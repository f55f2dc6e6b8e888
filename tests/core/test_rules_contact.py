"""Contact details: EMAIL, PHONE, URL and IP_ADDRESS, in English and French sentences.

Most tests run in both modes (the `engine` fixture): a valid e-mail, phone or address is found
whatever the mode, and a text that only looks like one is never reported. Mode-specific
behaviour (possible-but-invalid phones) is tested against `strict` and `permissive` directly.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from span_checks import found

import veil

# --- EMAIL -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "email"),
    [
        ("Please write to jean.tremblay@exemple.qc.ca before Friday.", "jean.tremblay@exemple.qc.ca"),
        ("Écrivez-moi à émilie@courriel.ca, merci.", "émilie@courriel.ca"),
        ("Send it to <a_b+tag@mail.example.com> today", "a_b+tag@mail.example.com"),
        ("Mon courriel : JEAN.ROY@EXEMPLE.CA.", "JEAN.ROY@EXEMPLE.CA"),
        ("contact:support-2@sous-domaine.exemple.org;", "support-2@sous-domaine.exemple.org"),
    ],
)
def test_email_is_found_with_its_exact_span(engine: veil.Engine, text: str, email: str) -> None:
    assert found(engine, text) == [("EMAIL", email)]


def test_trailing_sentence_dot_is_not_part_of_the_email(engine: veil.Engine) -> None:
    assert found(engine, "Write to jean@exemple.ca.") == [("EMAIL", "jean@exemple.ca")]


def test_leading_dot_is_not_part_of_the_local_part(engine: veil.Engine) -> None:
    assert found(engine, "liste:.jean@exemple.ca") == [("EMAIL", "jean@exemple.ca")]


def test_two_emails_in_one_sentence_are_two_spans(engine: veil.Engine) -> None:
    text = "Écrivez à jean@exemple.ca ou à marie@exemple.ca."
    assert found(engine, text) == [("EMAIL", "jean@exemple.ca"), ("EMAIL", "marie@exemple.ca")]


@pytest.mark.parametrize(
    "text",
    [
        "contact us @ the office",
        "Le symbole @ est partout",
        "log in as user@localhost",
        "my handle is @jean_roy",
        "mon courriel est info@exemple.",
    ],
)
def test_text_that_only_looks_like_an_email_is_not_one(engine: veil.Engine, text: str) -> None:
    assert [entity for entity, _ in found(engine, text) if entity == "EMAIL"] == []


def test_email_with_an_internationalised_top_level_domain_is_found(engine: veil.Engine) -> None:
    assert found(engine, "write to a@xn--d1acufc.xn--p1ai") == [("EMAIL", "a@xn--d1acufc.xn--p1ai")]


# --- PHONE -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("Call me at (514) 555-0199 tomorrow.", "(514) 555-0199"),
        ("Appelez-moi au (514) 555-0199 demain.", "(514) 555-0199"),
        ("My cell is +1 438 555 0142.", "+1 438 555 0142"),
        ("Mon cellulaire : 438.555.0142", "438.555.0142"),
        ("Phone: 1-819-555-0100", "1-819-555-0100"),
        ("Tél. : 1 819 555-0100", "1 819 555-0100"),
        ("Joignez le bureau de Paris au +33 1 42 68 53 00", "+33 1 42 68 53 00"),
        ("Mon portable : 06 12 34 56 78", "06 12 34 56 78"),
        ("Reach the desk at 514-555-0199; thanks", "514-555-0199"),
        ("tel:+15145550199", "+15145550199"),
    ],
)
def test_valid_phone_is_found_with_its_exact_span(engine: veil.Engine, text: str, phone: str) -> None:
    assert found(engine, text) == [("PHONE", phone)]


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("Voici le 514 555 0199, merci.", "514 555 0199"),
        ("It is 514 555 0199.", "514 555 0199"),
        ("5145550199", "5145550199"),
    ],
)
def test_valid_phone_needs_no_context_word(engine: veil.Engine, text: str, phone: str) -> None:
    assert found(engine, text) == [("PHONE", phone)]


@pytest.mark.parametrize(
    "text",
    [
        "Order 48213 is pending",
        "La commande 48213 est en attente",
        "Meeting at 10:30 on the 4th floor",
        "Réunion à 10 h 30, salle 204",
    ],
)
def test_short_numbers_are_not_phones(engine: veil.Engine, text: str) -> None:
    assert found(engine, text) == []


@pytest.mark.parametrize(
    ("text", "candidate"),
    [("Commande 555-0199 expédiée", "555-0199"), ("the code is 123 456 7890", "123 456 7890")],
)
def test_possible_but_invalid_phone_is_low_score_in_strict_and_dropped_in_permissive(
    strict: veil.Engine, permissive: veil.Engine, text: str, candidate: str
) -> None:
    spans = strict.detect(text)
    assert [(s.entity, text[s.start : s.end]) for s in spans] == [("PHONE", candidate)]
    assert spans[0].score < 0.5
    assert permissive.detect(text) == []


@pytest.mark.parametrize(
    ("text", "ip"),
    [
        ("Le serveur 192.168.10.20 ne répond pas", "192.168.10.20"),
        ("Call 10.20.30.40 for the printer", "10.20.30.40"),
        ("Appelez le 12.34.56.78 du réseau", "12.34.56.78"),
        ("host 10.0.0.1:8080", "10.0.0.1"),
    ],
)
def test_ipv4_address_is_never_a_phone(engine: veil.Engine, text: str, ip: str) -> None:
    assert found(engine, text) == [("IP_ADDRESS", ip)]


def test_ipv4_shaped_piece_of_a_longer_dotted_number_is_never_a_phone(strict: veil.Engine) -> None:
    assert found(strict, "build 192.168.1.1.1") == []


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("IBAN DE89 3704 0044 0532 0130 00", "IBAN", "DE89 3704 0044 0532 0130 00"),
        ("Virement au FR76 3000 6000 0112 3456 7890 189", "IBAN", "FR76 3000 6000 0112 3456 7890 189"),
        ("Pay with 4111 1111 1111 1111", "CREDIT_CARD", "4111 1111 1111 1111"),
        ("Carte 5500-0000-0000-0004", "CREDIT_CARD", "5500-0000-0000-0004"),
        ("My card number is 4000 0520 6427 9287", "CREDIT_CARD", "4000 0520 6427 9287"),
    ],
)
def test_chunks_of_an_iban_or_a_card_are_never_phones(engine: veil.Engine, text: str, entity: str, value: str) -> None:
    assert found(engine, text) == [(entity, value)]


def test_card_chunk_is_not_a_phone_even_next_to_a_phone_word(engine: veil.Engine) -> None:
    text = "Please call me about 4000 0520 6427 9287"
    assert found(engine, text) == [("CREDIT_CARD", "4000 0520 6427 9287")]


def test_chunk_of_an_iban_failing_its_checksum_is_not_a_phone(permissive: veil.Engine) -> None:
    assert found(permissive, "IBAN DE89 3704 0044 0532 0130 01") == []


def test_chunk_of_a_card_failing_its_checksum_is_not_a_phone(permissive: veil.Engine) -> None:
    assert found(permissive, "card 4089 0927 5113 1755 thanks") == []


def test_a_lone_parenthesis_is_not_part_of_the_phone(engine: veil.Engine) -> None:
    assert found(engine, "(call 514-555-0199)") == [("PHONE", "514-555-0199")]


# --- URL -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("See https://exemple.ca/dossier?id=42.", "https://exemple.ca/dossier?id=42"),
        ("Voir le dossier https://exemple.ca/dossier?id=42, merci", "https://exemple.ca/dossier?id=42"),
        ("(voir https://exemple.ca/a_(b))", "https://exemple.ca/a_(b)"),
        ("Link: HTTP://EXAMPLE.COM/A!", "HTTP://EXAMPLE.COM/A"),
        ("files at ftp://files.example.org/x;", "ftp://files.example.org/x"),
        ("Allez sur www.exemple.ca/profil/jean-roy.", "www.exemple.ca/profil/jean-roy"),
        ('href="https://exemple.ca/a"', "https://exemple.ca/a"),
    ],
)
def test_url_is_found_without_the_punctuation_around_it(engine: veil.Engine, text: str, url: str) -> None:
    assert found(engine, text) == [("URL", url)]


@pytest.mark.parametrize("text", ["http:// nothing", "see ://here", "visit the www", "le protocole https"])
def test_scheme_or_www_alone_is_not_a_url(engine: veil.Engine, text: str) -> None:
    assert found(engine, text) == []


# --- IP_ADDRESS ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ip"),
    [
        ("Login from 8.8.8.8 failed", "8.8.8.8"),
        ("Connexion depuis 225.88.187.115.", "225.88.187.115"),
        ("server 2001:db8:85a3::8a2e:370:7334 is up", "2001:db8:85a3::8a2e:370:7334"),
        ("adresse fe80::1ff:fe23:4567:890a, interface eth0", "fe80::1ff:fe23:4567:890a"),
        ("Gateway: fe80::1 on interface", "fe80::1"),
        ("[2001:db8::1]:8080", "2001:db8::1"),
    ],
)
def test_ip_address_is_found_with_its_exact_span(engine: veil.Engine, text: str, ip: str) -> None:
    assert found(engine, text) == [("IP_ADDRESS", ip)]


@pytest.mark.parametrize(
    "text",
    [
        "999.1.1.1",
        "version 1.2.3.4.5",
        "pi is 3.14",
        "at 10:30:45 sharp",
        "ratio 3:2:1",
        "Note: see below",
        "std::cout << x",
        "MAC address aa:bb:cc:dd:ee:ff",
    ],
)
def test_text_that_only_looks_like_an_ip_address_is_not_one(engine: veil.Engine, text: str) -> None:
    assert [entity for entity, _ in found(engine, text) if entity == "IP_ADDRESS"] == []


@pytest.mark.parametrize("text", ["loopback ::1 only", "unspecified :: here"])
def test_loopback_and_unspecified_ipv6_identify_nobody_and_are_not_reported(engine: veil.Engine, text: str) -> None:
    assert found(engine, text) == []


@pytest.mark.parametrize(
    "ip", ["::ffff:192.0.2.1", "2001:db8::192.168.1.1", "64:ff9b::198.51.100.1", "::ffff:0:192.168.1.1"]
)
def test_ipv6_with_an_embedded_ipv4_is_one_span(engine: veil.Engine, ip: str) -> None:
    assert found(engine, f"Tunnel to {ip} now") == [("IP_ADDRESS", ip)]


@pytest.mark.parametrize("text", ["IP 2001::db8::1", "ip 2001::25de::cade", "ip 1:2:3:4:5:6:7:8:9"])
def test_tail_of_an_invalid_ipv6_address_is_not_reported(engine: veil.Engine, text: str) -> None:
    assert found(engine, text) == []


def test_the_north_american_shortcut_agrees_with_libphonenumber() -> None:
    import random

    import phonenumbers

    from veil.detect.rules.contact import _nanp_assigned

    rng = random.Random(11)
    for _ in range(3000):
        area, exchange = f"{rng.randint(2, 9)}{rng.randint(0, 99):02d}", f"{rng.randint(2, 9)}{rng.randint(0, 99):02d}"
        national = f"{area}{exchange}{rng.randint(0, 9999):04d}"
        number = phonenumbers.PhoneNumber(country_code=1, national_number=int(national))
        expected = any(phonenumbers.is_valid_number_for_region(number, region) for region in ("CA", "US"))
        assert _nanp_assigned(national) == expected, national


# --- nothing kept ------------------------------------------------------------------------------


def _containers_holding(digits: str) -> list[str]:
    """Type names of the live containers (dicts, lists, tuples, sets) that hold a string with
    these digits in it, as an item, a key or a value. Containers the collector does not track
    (a dict of strings and numbers only, such as a C cache's table) are reached through the
    tracked objects that refer to them."""
    import gc

    def holds(item: object) -> bool:
        return isinstance(item, str) and digits in "".join(c for c in item if c.isdigit())

    gc.collect()
    tracked = gc.get_objects()
    seen: set[int] = set()
    holders = []
    for container in [*tracked, *(r for o in tracked for r in gc.get_referents(o) if not gc.is_tracked(r))]:
        if id(container) in seen:
            continue
        seen.add(id(container))
        if isinstance(container, dict):
            items = [*container.keys(), *container.values()]
        elif isinstance(container, list | tuple | set | frozenset):
            items = list(container)
        else:
            continue
        if any(holds(item) for item in items):
            holders.append(type(container).__name__)
    return holders


def test_no_phone_number_stays_in_memory_after_detection() -> None:
    # A process-wide cache once kept the last 4,096 phone candidates, of every caller, for the
    # life of the process. The number is built at run time so that no constant of this module
    # holds it; one North American and one European number (libphonenumber's path).
    engine = veil.Engine(veil.Policy(ner="off"))
    numbers = ["".join(("514 55", "5 0", "187")), "".join(("+33 6 4", "7 21 09 ", "38"))]
    for number in numbers:
        spans = engine.detect(f"Call me at {number} tonight.", "en")
        assert [s.entity for s in spans] == ["PHONE"]
        del spans
    del numbers, number  # this test's own references
    assert _containers_holding("5145550187") == []
    assert _containers_holding("647210938") == []


# --- the cost of a run of digit groups ---------------------------------------------------------


def _parses_while(detect: Callable[[], object], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The candidates libphonenumber is asked to parse while `detect()` runs."""
    import phonenumbers

    asked: list[str] = []
    parse = phonenumbers.parse

    def counting(number: str, region: str | None = None, *args: object, **kwargs: object) -> object:
        asked.append(number)
        return parse(number, region, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(phonenumbers, "parse", counting)
        detect()
    return asked


@pytest.mark.parametrize("separator", [" ", "\u00a0", "\u202f", "-"])
def test_a_run_of_zeros_asks_libphonenumber_the_same_few_questions_whatever_its_length(
    monkeypatch: pytest.MonkeyPatch, separator: str
) -> None:
    # Each digit of "0 0 0 0 …" starts a candidate (a failed one consumes nothing), each of which
    # asked libphonenumber about its runs of groups in eight regions: ~32 parses a character, a
    # thousand times slower than prose. The answers are now remembered for the scan.
    engine = veil.Engine(veil.Policy(ner="off"))
    engine.detect("0 0 0 0 0 0 0 0 0 0")  # the first scan also loads libphonenumber's metadata
    short = _parses_while(lambda: engine.detect(separator.join("0" * 500)), monkeypatch)
    long = _parses_while(lambda: engine.detect(separator.join("0" * 5000)), monkeypatch)
    assert len(short) == len(long) <= 50


def test_nothing_is_remembered_outside_a_scan_or_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from veil.detect.rules import base, contact

    number = "".join(("0 0", "3 1 4", "2 68 53 00"))
    asked = _parses_while(lambda: [contact._phone_validity(number) for _ in range(3)], monkeypatch)
    assert len(asked) == 3  # outside a scan: asked each time
    engine = veil.Engine(veil.Policy(ner="off"))
    engine.detect(f"{number} {number} {number}", "fr")
    assert getattr(base._SCAN, "memo", None) is None


def test_trunk_and_dialled_out_numbers_get_libphonenumber_s_answer_region_by_region() -> None:
    # _international_validity skips the parses whose answer it knows (impossible lengths; a
    # number dialled out with "00" reads the same from every region): it must still give the
    # best of libphonenumber's answers over the regions.
    import random

    import phonenumbers

    from veil.detect.rules.contact import _TRUNK_REGIONS, _international_validity

    def libphonenumber(candidate: str) -> int:
        best = 0
        for region in _TRUNK_REGIONS:
            try:
                number = phonenumbers.parse(candidate, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                return 2
            best = max(best, int(phonenumbers.is_possible_number(number)))
        return best

    generator = random.Random(20261203)
    answers = set()
    for _ in range(1500):
        lead = generator.choice(["0", "00", "00" + generator.choice("123456789"), "0" + generator.choice("123456789")])
        digits = lead + "".join(generator.choice("0123456789") for _ in range(generator.randint(6, 13)))
        candidate = "".join(d + (generator.choice(" -.\u00a0") if generator.random() < 0.4 else "") for d in digits)
        candidate = candidate.rstrip(" -.\u00a0")
        expected = libphonenumber(candidate)
        assert _international_validity(candidate, _TRUNK_REGIONS) == expected, candidate
        answers.add(expected)
    assert answers == {0, 1, 2}  # the sample reaches every answer
