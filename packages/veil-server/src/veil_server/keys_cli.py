"""`veil keys create|list|revoke`: the gateway's API keys, from a shell.

    veil keys create --tenant acme --scope chat --scope embeddings --name "support bot" --rpm 60
    veil keys list [--tenant acme] [--json]
    veil keys revoke 3f9a0c1b2d4e5f60

They use the settings of `veil serve` (`--config veil.toml`, else $VEIL_CONFIG, plus VEIL_*
variables) and its state database (`server.state_url`), so a key created here works at once on
every replica sharing that database, and a revocation holds from their next request on.

`create` prints the key on standard output, alone on its line (`KEY=$(veil keys create …)`), and
what it is on standard error; it is never shown again: `list` shows `sk-veil-<id>_…` and the last
four characters only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

EXIT_OK = 0
EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="veil keys", description="Create, list and revoke the gateway's API keys.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--config", help="the server's veil.toml (default: $VEIL_CONFIG); its server.state_url")

    create = actions.add_parser("create", help="create a key (printed once)")
    create.add_argument("--tenant", required=True, help="the tenant the key acts for")
    create.add_argument("--scope", dest="scopes", action="append", required=True, metavar="SCOPE",
                        help="a scope (repeat): chat, embeddings, anonymize, scan, models, reverse, mapping:read, "
                        "usage, admin")  # fmt: skip
    create.add_argument("--name", help="a label for people (not secret)")
    create.add_argument("--rpm", type=int, help="requests per minute (default: unlimited)")
    create.add_argument("--rpd", type=int, help="requests per day (default: unlimited)")
    create.add_argument("--budget", type=float, help="US dollars per calendar month (default: unlimited)")
    create.add_argument("--no-anonymize", action="store_true",
                        help="requests are not anonymized unless they ask (default: anonymized)")  # fmt: skip
    create.add_argument("--mode", choices=["strict", "permissive"], help="detection mode (default: the server's)")
    create.add_argument("--no-opt-out", action="store_true", help="requests may not turn anonymization off")
    create.add_argument("--entity", dest="entities", action="append", metavar="ENTITY",
                        help="detect only this entity type (repeat; default: the server policy's)")  # fmt: skip
    create.add_argument("--json", action="store_true", help="print the key and its record as one JSON object")
    common(create)

    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    common(listing)

    revoke = actions.add_parser("revoke", help="revoke a key: refused from the next request on")
    revoke.add_argument("id", help="the key's id (the 16 hex digits after sk-veil-)")
    revoke.add_argument("--tenant", help="refuse unless the key belongs to this tenant")
    common(revoke)
    return parser


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item.get('loc', ())) or 'settings'}: {item.get('msg')}"
        for item in error.errors()
    )


def _when(timestamp: int | None) -> str:
    return "-" if timestamp is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _record_dict(record: Any) -> dict[str, Any]:
    return {
        "id": record.id, "name": record.name, "tenant": record.tenant, "scopes": list(record.scopes),
        "policy": record.policy.model_dump(), "limits": record.limits.model_dump(), "created": record.created,
        "created_by": record.created_by, "revoked_at": record.revoked_at, "redacted_key": record.redacted,
    }  # fmt: skip


class CommandError(Exception):
    """A bad option or an unusable state database: one line on stderr, exit status 2."""


def _open(config: str | None) -> tuple[Any, Any]:
    from veil.detect.policy import Policy  # noqa: PLC0415
    from veil_server.keys import KeyStore  # noqa: PLC0415
    from veil_server.settings import Settings  # noqa: PLC0415
    from veil_server.state import StateDB  # noqa: PLC0415

    try:
        settings = Settings.load(config)
    except ValidationError as exc:
        raise CommandError(f"invalid settings: {_describe(exc)}") from None
    location = settings.state_location()
    if location == "memory":
        raise CommandError(
            "the server's state database is in memory (vault.url = 'memory' and no server.state_url): keys created "
            "here would vanish. Set server.state_url (or VEIL_SERVER__STATE_URL) to the file or PostgreSQL URL "
            "that `veil serve` uses."
        )
    state = StateDB.for_url(location, connect_timeout=settings.server.state_connect_timeout)
    return KeyStore(state), Policy.from_mapping(settings.policy, where="policy")


def _create(args: argparse.Namespace, store: Any, server_policy: Any) -> int:
    from veil_server.keys import check_key_policy  # noqa: PLC0415
    from veil_server.settings import KeyLimits, KeyPolicy  # noqa: PLC0415

    try:
        policy = KeyPolicy(anonymize=not args.no_anonymize, mode=args.mode, allow_opt_out=not args.no_opt_out,
                           entities=args.entities)  # fmt: skip
        limits = KeyLimits(requests_per_minute=args.rpm, requests_per_day=args.rpd, monthly_budget=args.budget)
    except ValidationError as exc:
        raise CommandError(_describe(exc).replace("requests_per_minute", "--rpm").replace(
            "requests_per_day", "--rpd").replace("monthly_budget", "--budget")) from None  # fmt: skip
    policy = check_key_policy(policy, server_policy)
    created = store.create(tenant=args.tenant, scopes=args.scopes, name=args.name, policy=policy, limits=limits,
                           created_by="cli")  # fmt: skip
    record = created.record
    if args.json:
        print(json.dumps({**_record_dict(record), "key": created.key}))
    else:
        print(created.key)
    print(f"veil keys: created {record.id} for tenant {record.tenant} (scopes {', '.join(record.scopes)}). "
          "Store the key now: it is shown only once.", file=sys.stderr)  # fmt: skip
    return EXIT_OK


def _list(args: argparse.Namespace, store: Any) -> int:
    records = store.list(tenant=args.tenant)
    if args.json:
        for record in records:
            print(json.dumps(_record_dict(record)))
        return EXIT_OK
    rows = [("ID", "TENANT", "NAME", "SCOPES", "KEY", "CREATED", "REVOKED")]
    rows += [(r.id, r.tenant, r.name or "-", ",".join(r.scopes), r.redacted, _when(r.created), _when(r.revoked_at))
             for r in records]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def _revoke(args: argparse.Namespace, store: Any) -> int:
    record = store.revoke(args.id, tenant=args.tenant)
    if record is None:
        where = f" of tenant {args.tenant}" if args.tenant else ""
        raise CommandError(f"no API key {args.id!r}{where} (see `veil keys list`)")
    print(f"revoked {record.id} (tenant {record.tenant}) at {_when(record.revoked_at)}; every replica refuses it "
          "from its next request on")  # fmt: skip
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    from veil_server.state import StateUnavailable  # noqa: PLC0415

    args = build_parser().parse_args(argv)
    store = None
    try:
        store, server_policy = _open(args.config)
        if args.action == "create":
            return _create(args, store, server_policy)
        if args.action == "list":
            return _list(args, store)
        return _revoke(args, store)
    # KeyStoreError and the core's ConfigError (a [policy] table that does not validate) are ValueErrors.
    except (CommandError, ValueError, StateUnavailable, FileNotFoundError) as exc:
        print(f"veil keys {args.action}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if store is not None:
            store.state.close()


if __name__ == "__main__":
    raise SystemExit(main())
