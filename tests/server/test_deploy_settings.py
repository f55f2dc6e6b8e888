"""Deployment settings say what is missing: the HSM key provider needs its module and its PIN."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from veil_server import Settings, create_app

from veil.errors import ConfigError


def test_hsm_keys_need_the_pkcs11_module_path() -> None:
    with pytest.raises(ValidationError, match=r"vault\.pkcs11_library"):
        Settings(vault={"url": "postgresql://127.0.0.1:1/veil", "keys": "pkcs11"})


def test_hsm_keys_need_the_pin_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VEIL_HSM_PIN", raising=False)
    settings = Settings(vault={"url": "postgresql://127.0.0.1:1/veil", "keys": "pkcs11",
                               "pkcs11_library": "/usr/lib/softhsm/libsofthsm2.so"})  # fmt: skip
    with pytest.raises(ConfigError, match="VEIL_HSM_PIN"):
        create_app(settings)
