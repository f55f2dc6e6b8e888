"""`veil serve` (and `veil-server`): run the gateway under uvicorn.

    veil serve                              # no configuration: echo models, open access, 127.0.0.1:8000
    veil serve --config veil.toml --port 9000 --workers 2

Options override the configuration file, which environment variables (VEIL_SERVER__PORT …)
override in turn. With several workers, each process reads the same settings from the environment.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="veil serve", description="Run veil's OpenAI-compatible gateway.")
    parser.add_argument("--config", help="a veil.toml (default: $VEIL_CONFIG, else none: built-in echo models)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--workers", type=int, help="worker processes (default 1)")
    parser.add_argument("--vault", help='vault: a directory, "memory", postgresql://… or redis://… (default .veil)')
    parser.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"])
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    """The options as VEIL_* variables: the one channel every worker process reads."""
    env: dict[str, str] = {}
    for option, variable in (("host", "VEIL_SERVER__HOST"), ("port", "VEIL_SERVER__PORT"),
                             ("workers", "VEIL_SERVER__WORKERS"), ("vault", "VEIL_VAULT__URL"),
                             ("log_level", "VEIL_SERVER__LOG_LEVEL")):  # fmt: skip
        value = getattr(args, option)
        if value is not None:
            env[variable] = str(value)
    if args.config:
        env["VEIL_CONFIG"] = os.path.abspath(args.config)
    return env


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item.get("loc", ()))
        lines.append(f"  {where or 'settings'}: {item.get('msg')}")
    return "\n".join(lines)


def _auth_summary(settings: Any, configured: int) -> str:
    """What the banner says about access: configured keys, keys in the state database, or open.
    Raises StateUnavailable when the state database cannot be reached: every worker would fail to
    start (each opens it), so `veil serve` stops here, once, instead."""
    location = settings.state_location()
    if location == "memory":
        return f"{configured} configured key(s)" if configured else "open (no API key configured)"
    from veil_server.keys import KeyStore  # noqa: PLC0415
    from veil_server.state import StateDB  # noqa: PLC0415

    state = StateDB.for_url(location, connect_timeout=settings.server.state_connect_timeout)
    try:
        stored = KeyStore(state).has_any()
    finally:
        state.close()
    if configured:
        return f"{configured} configured key(s), and the keys of `veil keys create`"
    return "the keys of `veil keys create`" if stored else "open until a key exists (`veil keys create`)"


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration, with veil's loggers on its handler. uvicorn's access log is
    off: it writes the URL each client sent (a path can carry personal data); the gateway's
    `veil_server.access` log names the route's template instead."""
    from uvicorn.config import LOGGING_CONFIG  # noqa: PLC0415

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["veil_server"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def main(argv: Sequence[str] | None = None) -> int:
    # httpx imports its command-line client (rich, pygments) whenever they are installed (spaCy
    # brings rich): a tenth of a second of start-up the gateway never uses. A None entry in
    # sys.modules makes that import fail, and httpx falls back to a stub `httpx.main`.
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    args = build_parser().parse_args(argv)
    os.environ.update(_overrides(args))
    from veil_server.settings import Settings  # noqa: PLC0415

    try:
        settings = Settings.load()
    except ValidationError as exc:
        print(f"veil serve: invalid settings:\n{_describe(exc)}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"veil serve: {exc}", file=sys.stderr)
        return 2
    from veil.detect.policy import Policy  # noqa: PLC0415
    from veil.errors import VeilError  # noqa: PLC0415

    try:
        # The [policy] table is read by the gateway (in each worker): checked here, before the
        # banner says the gateway is starting and before any worker starts.
        Policy.from_mapping(settings.policy, where="policy")
    except (VeilError, ValueError) as exc:
        print(f"veil serve: {exc}", file=sys.stderr)
        return 2
    import uvicorn  # noqa: PLC0415

    from veil_server.state import StateUnavailable  # noqa: PLC0415

    server = settings.server
    try:
        auth = _auth_summary(settings, len(settings.key_entries()))
    except StateUnavailable as exc:
        print(f"veil serve: {exc}", file=sys.stderr)
        return 2
    print(
        f"veil gateway: http://{server.host}:{server.port}/v1  models: {', '.join(settings.models)}  "
        f"vault: {settings.vault.url or os.environ.get('VEIL_HOME') or '.veil'}  auth: {auth}",
        file=sys.stderr,
    )
    options: dict[str, Any] = {"host": server.host, "port": server.port, "log_level": server.log_level,
                               "timeout_graceful_shutdown": 10, "access_log": False,
                               "log_config": log_config(server.log_level)}  # fmt: skip
    if server.workers > 1:
        uvicorn.run("veil_server.app:app_from_environment", factory=True, workers=server.workers, **options)
    else:
        from veil_server.app import create_app  # noqa: PLC0415

        try:
            app = create_app(settings)
        except (VeilError, ValueError, StateUnavailable) as exc:
            print(f"veil serve: {exc}", file=sys.stderr)
            return 2
        uvicorn.run(app, **options)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
