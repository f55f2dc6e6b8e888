"""The PKCS#11 key provider against a real SoftHSM2 token: the KEK never leaves the token."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from veil.crypto import KeyRef, KeyRing, MemoryDataKeyStore
from veil.crypto.envelope import associated_data
from veil.errors import ConfigError, IntegrityError, KeyUnavailable

LIBRARY = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "4321"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"SoftHSM2 is required under CI: {reason}")
    pytest.skip(f"SoftHSM2 unavailable: {reason}")


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A SoftHSM2 configuration whose token directory is private to this test session.

    The module reads SOFTHSM2_CONF once per process, so one configuration serves every test."""
    if shutil.which("softhsm2-util") is None or not Path(LIBRARY).exists():
        _unavailable("install the Debian package softhsm2")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    config = root / "softhsm2.conf"
    config.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(config)
    yield config
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture(scope="session")
def hsm_token(softhsm: Path) -> str:
    """One token for the session: the module lists its slots once per process, at first load."""
    label = "veil-test"
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", "87654321"],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(softhsm)},
    )
    return label


@pytest.fixture
def token(hsm_token: str) -> tuple[str, str]:
    """The token, and a key label of this test's own (each test gets fresh key versions)."""
    return hsm_token, f"kek-{uuid.uuid4().hex[:10]}"


def provider(token: tuple[str, str]):  # type: ignore[no-untyped-def]
    from veil.crypto.pkcs11 import Pkcs11KeyProvider

    return Pkcs11KeyProvider(LIBRARY, token[0], PIN, key_label=token[1])


def test_wrap_and_unwrap_round_trip_inside_the_token(token: tuple[str, str]) -> None:
    hsm = provider(token)
    ref = hsm.current()
    assert ref == KeyRef(token[1], 1)
    wrapped = hsm.wrap(ref, b"k" * 32, b"aad")
    assert hsm.unwrap(ref, wrapped, b"aad") == b"k" * 32


def test_a_wrong_aad_or_an_altered_key_fails_authentication(token: tuple[str, str]) -> None:
    hsm = provider(token)
    ref = hsm.current()
    wrapped = hsm.wrap(ref, b"k" * 32, b"aad")
    with pytest.raises(IntegrityError):
        hsm.unwrap(ref, wrapped, b"other")
    with pytest.raises(IntegrityError):
        hsm.unwrap(ref, wrapped[:-1] + bytes([wrapped[-1] ^ 1]), b"aad")


def test_the_kek_is_sensitive_and_not_extractable(token: tuple[str, str]) -> None:
    import pkcs11

    hsm = provider(token)
    key = hsm._key(hsm.current())
    assert key[pkcs11.Attribute.SENSITIVE] is True
    assert key[pkcs11.Attribute.EXTRACTABLE] is False
    with pytest.raises(pkcs11.exceptions.AttributeSensitive):
        key[pkcs11.Attribute.VALUE]


def test_rotation_keeps_old_versions_until_retired(token: tuple[str, str]) -> None:
    hsm = provider(token)
    v1 = hsm.current()
    old = hsm.wrap(v1, b"k" * 32, b"aad")
    v2 = hsm.rotate()
    assert v2 == KeyRef(token[1], 2)
    assert hsm.unwrap(v1, old, b"aad") == b"k" * 32
    assert provider(token).versions() == [v1, v2]  # another process sees both
    with pytest.raises(ConfigError):
        hsm.retire(v2)
    hsm.retire(v1)
    with pytest.raises(KeyUnavailable):
        hsm.unwrap(v1, old, b"aad")


def test_a_keyring_over_the_hsm_rotates_without_losing_a_value(token: tuple[str, str]) -> None:
    keyring = KeyRing(provider(token), MemoryDataKeyStore())
    aad = associated_data("t", "s", "{{EMAIL_1}}")
    sealed = keyring.encrypt("t", b"jean@exemple.ca", aad)
    ref, rewrapped = keyring.rotate()
    assert ref.version == 2
    assert rewrapped == 1
    assert keyring.decrypt("t", sealed, aad) == b"jean@exemple.ca"


def test_a_wrong_pin_is_refused_without_showing_it(token: tuple[str, str], softhsm: Path) -> None:
    # A PKCS#11 login covers the whole process, so the refusal is checked in a fresh one.
    code = (
        "from veil.crypto.pkcs11 import Pkcs11KeyProvider\n"
        "from veil.errors import KeyUnavailable\n"
        "try:\n"
        f"    Pkcs11KeyProvider({LIBRARY!r}, {token[0]!r}, '000000', key_label={token[1]!r})\n"
        "except KeyUnavailable as error:\n"
        "    print('refused:', error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "SOFTHSM2_CONF": str(softhsm)},
    )  # fmt: skip
    assert result.stdout.startswith("refused: the PKCS#11 token refused the PIN")
    assert "000000" not in result.stdout


def test_an_unknown_token_or_library_is_key_unavailable(token: tuple[str, str]) -> None:
    from veil.crypto.pkcs11 import Pkcs11KeyProvider

    with pytest.raises(KeyUnavailable, match="no PKCS#11 token"):
        Pkcs11KeyProvider(LIBRARY, "no-such-token", PIN)
    with pytest.raises(KeyUnavailable, match="cannot load"):
        Pkcs11KeyProvider("/nonexistent/libpkcs11.so", token[0], PIN)


def test_wrapping_from_eight_threads(token: tuple[str, str]) -> None:
    hsm = provider(token)
    ref = hsm.current()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for index in range(20):
                key = bytes([index]) * 32
                assert hsm.unwrap(ref, hsm.wrap(ref, key, b"a"), b"a") == key
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
