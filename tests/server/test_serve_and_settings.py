"""`veil serve` with no configuration shows a full round trip on the echo model; settings come from
veil.toml and VEIL_* variables and say what is wrong with them; the core CLI names the package
to install when the server is missing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from gateway_setup import CANARIES, CANARY_TEXT
from server_live import closed_port, scan_output
from veil_server import Settings
from veil_server.auth import StaticKeyAuthenticator

from veil.detect.policy import Policy


def test_veil_serve_without_configuration_round_trips_on_the_echo_model(tmp_path: Path) -> None:
    port = closed_port()
    env = {**os.environ, "VEIL_HOME": str(tmp_path / "home")}
    if "ner" in Policy.__dataclass_fields__:
        env["VEIL_POLICY"] = '{"ner": "off"}'  # start-up without loading the NER models
    process = subprocess.Popen(
        [sys.executable, "-m", "veil.cli", "serve", "--port", str(port)],
        stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        banner = []
        for line in process.stderr:  # wait for uvicorn's own word that it listens
            banner.append(line)
            if "Uvicorn running" in line or "Application startup complete" in line:
                break
        assert any("models: echo, echo-embedding" in line for line in banner), banner
        assert any("auth: open" in line for line in banner)
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0) as sdk:
            answer = sdk.chat.completions.create(model="echo", messages=[{"role": "user", "content": CANARY_TEXT}])
            streamed = "".join(
                chunk.choices[0].delta.content or ""
                for chunk in sdk.chat.completions.create(
                    model="echo", messages=[{"role": "user", "content": CANARY_TEXT}], stream=True
                )
                if chunk.choices
            )
        assert answer.choices[0].message.content == streamed == CANARY_TEXT
        assert answer.model_extra["veil"]["pii_count"] == 4
        assert (tmp_path / "home" / "keys.json").exists()  # the default vault: $VEIL_HOME
    finally:
        process.terminate()
        process.wait(timeout=20)
        scan_output("subprocess veil serve", banner, process.stderr)


def test_the_core_cli_names_the_package_to_install_when_the_server_is_missing() -> None:
    code = "import sys; sys.modules['veil_server'] = None; from veil.cli import main; sys.exit(main(['serve']))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "pip install veil-server" in result.stderr


def test_settings_come_from_veil_toml_and_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "veil.toml"
    config.write_text(
        '[server]\nport = 9100\nmax_body_bytes = 2048\n\n[policy]\nmode = "permissive"\n\n'
        '[providers.local]\nbase_url = "http://127.0.0.1:11434/v1"\nlocation = "on premises"\n\n'
        '[models."llama3"]\nprovider = "local"\ncontext_length = 8192\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("VEIL_SERVER__PORT", "9200")
    settings = Settings.load(config)
    assert settings.server.port == 9200
    assert settings.server.max_body_bytes == 2048
    assert settings.policy == {"mode": "permissive"}
    assert list(settings.models) == ["llama3"]  # no built-in echo models once models are configured
    assert settings.providers["local"].location == "on premises"
    assert "echo" in settings.providers  # the echo provider stays available


def test_invalid_settings_name_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="provider"):
        Settings(models={"m": {"provider": "nowhere"}})
    with pytest.raises(ValueError, match="base_url"):
        Settings(providers={"p": {"base_url": "api.openai.com"}})
    with pytest.raises(ValueError, match="key_sha256"):
        Settings(server={"keys": [{"key_sha256": "not-hex"}]})
    with pytest.raises(ValueError, match="unknown scope"):
        Settings(server={"keys": [{"key_env": "X", "scopes": ["everything"]}]})
    with pytest.raises(ValueError, match="several workers"):
        Settings(server={"workers": 2}, vault={"url": "memory"})
    with pytest.raises(FileNotFoundError):
        Settings.load(tmp_path / "missing.toml")
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nport = 'eighty'\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "veil.cli", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "server.port" in result.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_an_invalid_policy_stops_serve_before_the_banner_and_any_worker(tmp_path: Path, workers: int) -> None:
    config = tmp_path / "bad-policy.toml"
    config.write_text(f'[server]\nworkers = {workers}\n\n[policy]\nmode = "loose"\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "veil.cli", "serve", "--config", str(config), "--port", str(closed_port()),
         "--vault", str(tmp_path / "vault")],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "VEIL_HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 2
    assert "policy.mode" in result.stderr
    assert "veil gateway:" not in result.stderr  # no banner: the gateway never said it was starting


def test_static_keys_are_kept_as_digests_and_found_whatever_their_position(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_KEY", "sk-veil-team")
    settings = Settings(
        server={"keys": [{"key_sha256": hashlib.sha256(b"sk-veil-a").hexdigest(), "tenant": "a"},
                         {"key_env": "TEAM_KEY", "tenant": "team", "scopes": ["chat", "mapping:read"]}]},
        api_key="sk-veil-shortcut",
    )  # fmt: skip
    authenticator = StaticKeyAuthenticator(settings.key_entries())
    assert authenticator.lookup("sk-veil-a").tenant == "a"
    team = authenticator.lookup("sk-veil-team")
    assert team.tenant == "team" and team.allows("mapping:read") and not team.allows("embeddings")
    assert authenticator.lookup("sk-veil-shortcut").tenant == "default"
    assert authenticator.lookup("sk-veil-") is None and authenticator.lookup(CANARIES["email"]) is None
    assert "sk-veil-team" not in repr(settings)


def test_two_workers_share_one_vault_for_named_scopes(tmp_path: Path) -> None:
    port = closed_port()
    env = {**os.environ, "VEIL_HOME": str(tmp_path / "home"), "TEST_KEY": "sk-veil-workers",
           "VEIL_SERVER__KEYS": '[{"key_env": "TEST_KEY", "scopes": ["chat", "mapping:read"]}]'}  # fmt: skip
    if "ner" in Policy.__dataclass_fields__:
        env["VEIL_POLICY"] = '{"ner": "off"}'
    process = subprocess.Popen(
        [sys.executable, "-m", "veil.cli", "serve", "--port", str(port), "--workers", "2",
         "--vault", str(tmp_path / "vault")],
        stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        started, seen = 0, []
        for line in process.stderr:  # each worker says so once it serves
            seen.append(line)
            started += "Application startup complete" in line
            if started == 2:
                break
        assert started == 2
        workers = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(workers) >= 2
        emails = [CANARIES["email"], "jean@exemple.ca"]
        mappings = []
        for index in range(8):  # new connections: the kernel spreads them over the workers
            email = emails[index % 2]
            with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-veil-workers",
                               max_retries=0) as sdk:  # fmt: skip
                answer = sdk.chat.completions.create(
                    model="echo", messages=[{"role": "user", "content": f"{index}: {email}"}],
                    extra_headers={"X-Veil-Scope": "shared-conversation"},
                )  # fmt: skip
            assert answer.choices[0].message.content == f"{index}: {email}"
            mappings.append(answer.model_extra["veil"]["mapping"])
        # Whichever worker served it, a value keeps the token it got first.
        assert mappings == [{"{{EMAIL_1}}": emails[0]}, {"{{EMAIL_2}}": emails[1]}] * 4
    finally:
        process.terminate()
        process.wait(timeout=30)
        scan_output("subprocess veil serve --workers 2", seen, process.stderr)
