"""SECRET: API keys with well-known prefixes, JWTs, private keys and labelled credentials.

The span is the credential alone, never the word that announced it ("Bearer", "password").
"""

from __future__ import annotations

import pytest
from span_checks import found

import veil

# Built from pieces so that secret scanners do not flag this test file.
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
GOOGLE_KEY = "AIza" + "Sy" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"
STRIPE_KEY = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34\n-----END RSA PRIVATE KEY-----"
RANDOM_TOKEN = "Xy7kQ2mN9pL4rT8vW3zA"


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
        GITHUB_TOKEN,
        "AKIAIOSFODNN7EXAMPLE",
        GOOGLE_KEY,
        "xoxb-123456789012-abcdefABCDEF",
        STRIPE_KEY,
        "glpat-abcdefghij1234567890",
        JWT,
    ],
)
@pytest.mark.parametrize("sentence", ["Here is my key: {} - keep it safe.", "Voici ma clé {}, ne la partage pas."])
def test_api_key_with_a_known_prefix_is_a_secret(engine: veil.Engine, sentence: str, secret: str) -> None:
    text = sentence.format(secret)
    assert found(engine, text) == [("SECRET", secret)]


def test_private_key_block_is_one_secret(engine: veil.Engine) -> None:
    text = f"Clé du serveur :\n{PRIVATE_KEY}\nMerci"
    assert found(engine, text) == [("SECRET", PRIVATE_KEY)]


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {RANDOM_TOKEN}",
        f"curl -H 'Authorization: bearer {RANDOM_TOKEN}'",
        f"token: {RANDOM_TOKEN}",
        f"password: {RANDOM_TOKEN}",
        f"Token {RANDOM_TOKEN}",
    ],
)
def test_labelled_random_credential_is_a_secret_without_its_label(engine: veil.Engine, text: str) -> None:
    assert found(engine, text) == [("SECRET", RANDOM_TOKEN)]


@pytest.mark.parametrize(
    "text",
    [
        "Bearer of good news is here today",
        "password hunter2",
        "token: aaaaaaaaaaaaaaaaaaaaaaaaa",
        "my sk-learn model",
        "AKIAIOSFODNN7EXAMPLEX",
        "Le mot de passe est oublié",
    ],
)
def test_prefix_or_label_without_a_credential_is_not_a_secret(engine: veil.Engine, text: str) -> None:
    assert found(engine, text) == []


def test_french_password_label_is_not_part_of_the_secret(engine: veil.Engine) -> None:
    assert found(engine, f"mot de passe: {RANDOM_TOKEN}") == [("SECRET", RANDOM_TOKEN)]


@pytest.mark.parametrize("text", [f"Password: {RANDOM_TOKEN}", f"Mot de passe: {RANDOM_TOKEN}"])
def test_capitalised_password_label_announces_a_secret(engine: veil.Engine, text: str) -> None:
    assert ("SECRET", RANDOM_TOKEN) in found(engine, text)


@pytest.mark.parametrize(
    "text",
    [
        f"API_KEY={RANDOM_TOKEN}",
        f"password={RANDOM_TOKEN}",
        f"API_KEY = {RANDOM_TOKEN}",
        f"mot de passe : {RANDOM_TOKEN}",
    ],
)
def test_key_value_credential_is_a_secret(engine: veil.Engine, text: str) -> None:
    assert ("SECRET", RANDOM_TOKEN) in found(engine, text)
