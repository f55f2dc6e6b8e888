"""Deployment settings say what is missing: the HSM key provider needs its module and its PIN."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from metering import start_serve, wait_started
from pydantic import ValidationError
from server_live import closed_port
from services import postgres_database, require_service
from veil_server import Settings, create_app

from veil.errors import ConfigError

SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"


def test_several_workers_with_limits_need_redis() -> None:
    key = {"key_sha256": "0" * 64, "limits": {"requests_per_minute": 10}}
    with pytest.raises(ValidationError, match=r"limits needs server\.redis_url"):
        Settings(server={"workers": 2, "keys": [key]})
    assert Settings(server={"workers": 2, "keys": [key], "redis_url": "redis://127.0.0.1:6379/0"}).server.workers == 2
    assert Settings(server={"workers": 2, "keys": [{**key, "limits": {}}]}).server.workers == 2


def test_hsm_keys_need_the_pkcs11_module_path() -> None:
    with pytest.raises(ValidationError, match=r"vault\.pkcs11_library"):
        Settings(vault={"url": "postgresql://127.0.0.1:1/veil", "keys": "pkcs11"})


def test_hsm_keys_need_the_pin_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VEIL_HSM_PIN", raising=False)
    settings = Settings(vault={"url": "postgresql://127.0.0.1:1/veil", "keys": "pkcs11",
                               "pkcs11_library": "/usr/lib/softhsm/libsofthsm2.so"})  # fmt: skip
    with pytest.raises(ConfigError, match="VEIL_HSM_PIN"):
        create_app(settings)


def test_veil_serve_seals_the_vault_with_keys_held_in_an_hsm(tmp_path: Path) -> None:
    """SoftHSM2 stands in for the HSM; the server runs in its own process (SoftHSM reads its
    configuration once per process)."""
    if shutil.which("softhsm2-util") is None or not Path(SOFTHSM).exists():
        require_service("SoftHSM2", "install the Debian package softhsm2")
    (tmp_path / "tokens").mkdir()
    config = tmp_path / "softhsm2.conf"
    config.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    hsm = {"SOFTHSM2_CONF": str(config), "VEIL_HSM_PIN": "4321"}
    init = ["softhsm2-util", "--init-token", "--free", "--label", "veil", "--pin", "4321", "--so-pin", "87654321"]
    subprocess.run(init, check=True, capture_output=True, env={**os.environ, **hsm})
    with postgres_database() as database:
        toml = tmp_path / "veil.toml"
        toml.write_text(
            f'[vault]\nurl = "{database}"\nkeys = "pkcs11"\npkcs11_library = "{SOFTHSM}"\npkcs11_token = "veil"\n\n'
            f'[server]\nstate_url = "{database}"\n\n[policy]\nner = "off"\n', encoding="utf-8",
        )  # fmt: skip
        (tmp_path / "home").mkdir()
        process, url = start_serve(toml, tmp_path / "home", hsm)
        try:
            wait_started(process)
            sealed = httpx.post(f"{url}/v1/anonymize", json={"text": "Écrivez à marie@exemple.ca", "scope": "s1"},
                                timeout=30).json()  # fmt: skip
            assert sealed["anonymized_text"] == "Écrivez à {{EMAIL_1}}"
            assert sealed["mapping"] == {"{{EMAIL_1}}": "marie@exemple.ca"}
        finally:
            process.terminate()
            process.wait(timeout=20)
    assert list((tmp_path / "tokens").iterdir())  # the token holds the KEK
    assert not (tmp_path / "home" / "keys.json").exists()  # no key file anywhere


@pytest.mark.parametrize("workers", [1, 2])
def test_veil_serve_refuses_to_start_without_its_state_database(tmp_path: Path, workers: int) -> None:
    # Checked once, before the banner and before any worker starts: each worker would fail to
    # open it in turn (and with two workers the server would not exit), after the banner had
    # already waited for it once.
    toml = tmp_path / "veil.toml"
    toml.write_text(f'[server]\nstate_url = "postgresql://veil:s3cret@127.0.0.1:{closed_port()}/veil"\n'
                    f'workers = {workers}\nstate_connect_timeout = 0.5\n'
                    f'[vault]\nurl = "{tmp_path / "vault"}"\n[policy]\nner = "off"\n', encoding="utf-8")  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "veil.cli", "serve", "--config", str(toml), "--port", "0"],
                            capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert "PostgreSQL state database unreachable" in result.stderr
    assert "veil gateway:" not in result.stderr  # no banner: the gateway does not start
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr
