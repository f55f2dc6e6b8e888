"""`veil keys create|list|revoke`: the gateway's keys from a shell, in the state database `veil serve` uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_live import scan_output
from veil_server import Settings, create_app

from veil.cli import main

CHAT = {"model": "echo", "messages": [{"role": "user", "content": "Bonjour"}]}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "veil.toml"
    path.write_text(
        f'[server]\nstate_url = "{tmp_path / "state" / "server.db"}"\n\n[vault]\nurl = "memory"\n\n'
        '[policy]\nner = "off"\nentities = ["EMAIL", "PHONE"]\n',
        encoding="utf-8",
    )
    return path


def veil(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_create_prints_the_key_once_and_the_server_accepts_it(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = veil(capsys, "keys", "create", "--config", str(config), "--tenant", "acme", "--scope", "chat",
                          "--scope", "scan", "--name", "support bot", "--rpm", "60", "--rpd", "1000", "--budget",
                          "25", "--no-anonymize", "--mode", "permissive", "--entity", "email")  # fmt: skip
    assert code == 0, err
    key = out.strip()
    assert key.startswith("sk-veil-") and len(out.splitlines()) == 1
    assert "shown only once" in err and key not in err
    with TestClient(create_app(Settings.load(config))) as client:
        answer = client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200 and answer.json()["veil"]["anonymized"] is False
        record = client.app.state.gateway.keys.verify(key)  # type: ignore[attr-defined]
    assert record.name == "support bot" and record.scopes == ("chat", "scan") and record.created_by == "cli"
    assert record.limits.requests_per_minute == 60 and record.limits.requests_per_day == 1000
    assert record.limits.monthly_budget == 25
    assert record.policy.mode == "permissive" and record.policy.entities == ["EMAIL"]
    code, out, _ = veil(capsys, "keys", "list", "--config", str(config))
    assert code == 0 and record.id in out and key not in out and key.split("_", 1)[1] not in out
    assert key[-4:] in out and "support bot" in out


def test_list_filters_by_tenant_and_revoke_takes_effect(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for tenant in ("acme", "globex"):
        code, _, err = veil(capsys, "keys", "create", "--config", str(config), "--tenant", tenant, "--scope", "chat")
        assert code == 0, err
    code, out, _ = veil(capsys, "keys", "list", "--config", str(config), "--tenant", "acme", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [row["tenant"] for row in rows] == ["acme"] and "key" not in rows[0]
    key_id = rows[0]["id"]
    code, _, err = veil(capsys, "keys", "revoke", key_id, "--config", str(config), "--tenant", "globex")
    assert code == 2 and "no API key" in err
    code, out, _ = veil(capsys, "keys", "revoke", key_id, "--config", str(config))
    assert code == 0 and f"revoked {key_id}" in out
    code, out, _ = veil(capsys, "keys", "list", "--config", str(config), "--json")
    revoked = {row["id"]: row["revoked_at"] for row in map(json.loads, out.splitlines())}
    assert revoked[key_id] is not None and sum(value is None for value in revoked.values()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tenant", "acme", "--scope", "everything"], "unknown scope"),
        (["--tenant", "a b", "--scope", "chat"], "tenant"),
        (["--tenant", "acme", "--scope", "chat", "--entity", "CA_SIN"], "does not report CA_SIN"),
        (["--tenant", "acme", "--scope", "chat", "--rpm", "0"], "--rpm"),
    ],
)
def test_bad_options_exit_2_with_one_line_and_create_nothing(
    config: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = veil(capsys, "keys", "create", "--config", str(config), *argv)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1
    assert veil(capsys, "keys", "list", "--config", str(config), "--json")[1] == ""


def test_a_state_database_in_memory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "veil.toml"
    path.write_text('[vault]\nurl = "memory"\n', encoding="utf-8")
    code, _, err = veil(capsys, "keys", "create", "--config", str(path), "--tenant", "acme", "--scope", "chat")
    assert code == 2 and "would vanish" in err


def test_the_vault_key_actions_are_still_the_cores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = veil(capsys, "keys", "generate")
    assert code == 0 and len(out.strip()) == 44  # a base64 vault key, not an API key


def test_the_installed_command_creates_a_key_and_the_core_does_not_import_the_server(tmp_path: Path) -> None:
    env = {**os.environ, "VEIL_HOME": str(tmp_path / "home")}
    veil_command = Path(sys.executable).parent / "veil"
    result = subprocess.run([str(veil_command), "keys", "create", "--tenant", "acme", "--scope", "chat"],
                            capture_output=True, text=True, env=env, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sk-veil-") and (tmp_path / "home" / "server.db").exists()
    probe = "import sys, veil.cli; print('veil_server' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert imported.stdout.strip() == "False"


def test_keys_made_by_the_cli_work_on_a_running_veil_serve_with_two_workers(tmp_path: Path) -> None:
    import httpx
    from server_live import closed_port

    env = {**os.environ, "VEIL_HOME": str(tmp_path / "home"), "VEIL_POLICY": '{"ner": "off"}'}
    veil_command = str(Path(sys.executable).parent / "veil")

    def cli(*argv: str) -> str:
        done = subprocess.run([veil_command, *argv], capture_output=True, text=True, env=env, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    key = cli("keys", "create", "--tenant", "acme", "--scope", "chat").strip()
    port = closed_port()
    process = subprocess.Popen([veil_command, "serve", "--port", str(port), "--workers", "2"],
                               stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)  # fmt: skip
    try:
        assert process.stderr is not None
        banner = []
        for line in process.stderr:
            banner.append(line)
            if "Application startup complete" in line:
                break
        assert "auth: the keys of `veil keys create`" in banner[0], banner
        url = f"http://127.0.0.1:{port}/v1"
        body = {"model": "echo", "messages": [{"role": "user", "content": "Bonjour"}]}
        assert httpx.post(f"{url}/chat/completions", json=body).status_code == 401  # a key exists: closed
        token = httpx.post(f"{url}/auth/token", headers={"Authorization": f"Bearer {key}"}).json()["access_token"]
        for credential in (key, token) * 3:  # both workers, whichever answers
            answer = httpx.post(f"{url}/chat/completions", json=body, headers={"Authorization": f"Bearer {credential}"})
            assert answer.status_code == 200, answer.text
        cli("keys", "revoke", key.removeprefix("sk-veil-").split("_")[0])
        for credential in (key, token) * 3:
            answer = httpx.post(f"{url}/chat/completions", json=body, headers={"Authorization": f"Bearer {credential}"})
            assert answer.status_code == 401 and "revoked" in answer.json()["error"]["message"]
    finally:
        process.terminate()
        process.wait(timeout=30)
        scan_output("subprocess veil serve --workers 2", banner, process.stderr)


def test_the_core_cli_names_the_package_to_install_for_api_keys() -> None:
    code = "import sys; sys.modules['veil_server'] = None; from veil.cli import main; sys.exit(main(['keys', 'list']))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "pip install veil-server" in result.stderr
