"""Webhook subscriptions and their delivery log, in the state database.

A tenant's admin subscribes a URL to some events (`completion.done`, `anonymize.flagged`,
`quota.exceeded`); the server answers the subscription's signing secret (`whsec_…`) once, and
keeps it sealed with the vault's key ring (veil_server.sealing): it must read it back to sign.

Every event that matches a subscription becomes a delivery row (the JSON body: ids, counts,
models and entity types only, never a value), then attempts (status code, latency, error class,
next attempt). The dispatcher (veil_server.dispatcher) claims due deliveries with a lease, so
several replicas sharing PostgreSQL never send one delivery twice at once, and deliveries left
pending by a stopped process are sent after its restart.

Tables: webhook_subscriptions, webhook_deliveries, webhook_attempts.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from veil.errors import VeilError
from veil_server.errors import listed_names
from veil_server.events import EVENT_NAMES, Event
from veil_server.sealing import FieldSealer
from veil_server.state import StateDB

PING_EVENT = "webhook.ping"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of generated secrets, not a secret
_PURPOSE = "webhook-secret"
_MAX_URL = 2048

Status = Literal["pending", "sending", "delivered", "failed"]

MIGRATION = [
    """CREATE TABLE IF NOT EXISTS webhook_subscriptions (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        url TEXT NOT NULL,
        events TEXT NOT NULL,
        secret TEXT NOT NULL,
        previous_secret TEXT,
        previous_expires DOUBLE PRECISION,
        description TEXT,
        created_by TEXT,
        created DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS webhook_subscriptions_tenant ON webhook_subscriptions (tenant)",
    """CREATE TABLE IF NOT EXISTS webhook_deliveries (
        id TEXT PRIMARY KEY,
        subscription_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        event_id TEXT NOT NULL,
        event TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt DOUBLE PRECISION,
        lease_owner TEXT,
        lease_until DOUBLE PRECISION,
        last_status_code INTEGER,
        last_error TEXT,
        last_latency_ms DOUBLE PRECISION,
        created DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        UNIQUE (subscription_id, event_id)
    )""",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (status, next_attempt)",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_subscription ON webhook_deliveries (subscription_id, created)",
    """CREATE TABLE IF NOT EXISTS webhook_attempts (
        delivery_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        time DOUBLE PRECISION NOT NULL,
        status_code INTEGER,
        error TEXT,
        latency_ms DOUBLE PRECISION NOT NULL,
        next_attempt DOUBLE PRECISION,
        PRIMARY KEY (delivery_id, attempt)
    )""",
]


class WebhookError(ValueError):
    """A subscription that cannot be accepted as given (the message says why, never a secret)."""


def check_url(url: str, *, allow_private: bool) -> str:
    """An http(s) URL with a host and no credentials; with `allow_private` False, a literal IP
    address must be public (names are checked again at each delivery, after resolution)."""
    if len(url) > _MAX_URL:
        raise WebhookError(f"url: at most {_MAX_URL} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise WebhookError("url: only http:// and https:// URLs can receive webhooks")
    if not parts.hostname:
        raise WebhookError("url: the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise WebhookError("url: credentials in the URL are not accepted; verify the signature instead")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise WebhookError("url: the port is not a number from 0 to 65535") from None
    if parts.fragment:
        raise WebhookError("url: a fragment (#…) is never sent; remove it")
    if not allow_private:
        try:
            address = ipaddress.ip_address(parts.hostname)
        except ValueError:
            address = None
        if address is not None and not is_public(address):
            raise WebhookError(
                "url: private, loopback and link-local addresses are refused "
                "(server.webhooks.allow_private_addresses allows them)"
            )
        if parts.hostname.lower() in ("localhost", "localhost.localdomain") or parts.hostname.endswith(".localhost"):
            raise WebhookError("url: localhost is refused (server.webhooks.allow_private_addresses allows it)")
    return url


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A globally routable unicast address (not loopback, private, link-local, shared, reserved, multicast)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_events(events: Iterable[str]) -> list[str]:
    chosen = sorted(set(events))
    if not chosen:
        raise WebhookError(f"events: choose at least one of {sorted(EVENT_NAMES)}")
    unknown = [name for name in chosen if name not in EVENT_NAMES]
    if unknown:
        raise WebhookError(f"events: unknown {listed_names(unknown)}; known: {sorted(EVENT_NAMES)}")
    return chosen


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    tenant: str
    url: str
    events: tuple[str, ...]
    description: str | None
    created_by: str | None
    created: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "object": "webhook_subscription", "url": self.url, "events": list(self.events),
            "description": self.description, "created_by": self.created_by, "created": int(self.created),
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Delivery:
    """One due delivery, claimed by this process until `lease_until`."""

    id: str
    subscription_id: str
    tenant: str
    event: str
    body: bytes
    attempts: int
    url: str
    signing_secrets: tuple[str, ...]
    """The current secret, then the previous one during a rotation's grace period. Empty when
    they cannot be opened: the delivery fails (it is never sent unsigned)."""


def _row_subscription(row: Sequence[Any]) -> Subscription:
    return Subscription(str(row[0]), str(row[1]), str(row[2]), tuple(json.loads(row[3])), row[4], row[5], float(row[6]))


_SUBSCRIPTION_COLUMNS = "id, tenant, url, events, description, created_by, created"


class WebhookStore:
    """Subscriptions, deliveries and attempts in the gateway's StateDB (SQLite or PostgreSQL)."""

    def __init__(self, state: StateDB, sealer: FieldSealer, *, max_subscriptions: int = 50) -> None:
        self.state = state
        self.sealer = sealer
        self.max_subscriptions = max_subscriptions

    def _migrate(self) -> None:
        self.state.ensure("webhooks", MIGRATION)

    # -- subscriptions ----------------------------------------------------------------------

    def create(
        self, tenant: str, url: str, events: Iterable[str], *, description: str | None = None,
        created_by: str | None = None,
    ) -> tuple[Subscription, str]:  # fmt: skip
        """A new subscription and its signing secret (returned here only, never again)."""
        self._migrate()
        chosen = check_events(events)
        subscription = Subscription(
            f"wh_{uuid.uuid4().hex[:24]}", tenant, url, tuple(chosen), description, created_by, time.time()
        )
        secret = f"{SECRET_PREFIX}{secrets.token_urlsafe(32)}"
        sealed = self.sealer.seal(_PURPOSE, tenant, subscription.id, secret)
        with self.state.transaction() as tx:
            row = tx.fetchone("SELECT COUNT(*) FROM webhook_subscriptions WHERE tenant = ?", (tenant,))
            if row is not None and int(row[0]) >= self.max_subscriptions:
                raise WebhookError(f"this tenant has {self.max_subscriptions} subscriptions already (the limit)")
            tx.execute(
                "INSERT INTO webhook_subscriptions (id, tenant, url, events, secret, description, created_by, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (subscription.id, tenant, url, json.dumps(chosen), sealed, description, created_by,
                 subscription.created),
            )  # fmt: skip
        return subscription, secret

    def subscriptions(self, tenant: str) -> list[Subscription]:
        self._migrate()
        with self.state.transaction() as tx:
            rows = tx.fetchall(
                f"SELECT {_SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions"  # noqa: S608 - constants
                " WHERE tenant = ? ORDER BY created, id",
                (tenant,),
            )
        return [_row_subscription(row) for row in rows]

    def get(self, tenant: str, subscription_id: str) -> Subscription | None:
        """The tenant's subscription, or None (unknown, or another tenant's: the same answer)."""
        self._migrate()
        with self.state.transaction() as tx:
            row = tx.fetchone(
                f"SELECT {_SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions"  # noqa: S608 - constants
                " WHERE id = ? AND tenant = ?",
                (subscription_id, tenant),
            )
        return _row_subscription(row) if row is not None else None

    def rotate_secret(
        self, tenant: str, subscription_id: str, *, grace: float, now: float | None = None
    ) -> tuple[str, float] | None:
        """A new secret for the subscription (returned here only). For `grace` seconds deliveries
        are signed with both (one `v1=` each), so receivers switch without losing one. Returns the
        secret and the end of the grace period, or None for an unknown subscription."""
        self._migrate()
        now = time.time() if now is None else now
        secret = f"{SECRET_PREFIX}{secrets.token_urlsafe(32)}"
        sealed = self.sealer.seal(_PURPOSE, tenant, subscription_id, secret)
        with self.state.transaction() as tx:
            changed = tx.execute(
                "UPDATE webhook_subscriptions SET previous_secret = secret, previous_expires = ?, secret = ?"
                " WHERE id = ? AND tenant = ?",
                (now + grace, sealed, subscription_id, tenant),
            )
        return (secret, now + grace) if changed else None

    def delete(self, tenant: str, subscription_id: str) -> bool:
        """Remove a subscription with its secret, its pending deliveries and its log."""
        self._migrate()
        with self.state.transaction() as tx:
            removed = tx.execute(
                "DELETE FROM webhook_subscriptions WHERE id = ? AND tenant = ?", (subscription_id, tenant)
            )
            if not removed:
                return False
            tx.execute(
                "DELETE FROM webhook_attempts WHERE delivery_id IN "
                "(SELECT id FROM webhook_deliveries WHERE subscription_id = ?)",
                (subscription_id,),
            )
            tx.execute("DELETE FROM webhook_deliveries WHERE subscription_id = ?", (subscription_id,))
        return True

    # -- deliveries --------------------------------------------------------------------------

    def fan_out(self, events: Sequence[Event], now: float | None = None) -> int:
        """One pending delivery per (event, subscription of its tenant that wants it)."""
        self._migrate()
        now = time.time() if now is None else now
        created = 0
        tenants = sorted({event.tenant for event in events})
        with self.state.transaction() as tx:
            wanted: dict[str, list[tuple[str, set[str]]]] = {tenant: [] for tenant in tenants}
            for tenant in tenants:
                for sub_id, names in tx.fetchall(
                    "SELECT id, events FROM webhook_subscriptions WHERE tenant = ?", (tenant,)
                ):
                    wanted[tenant].append((str(sub_id), set(json.loads(names))))
            for event in events:
                body = json.dumps(event.to_dict(), separators=(",", ":"), sort_keys=True)
                for sub_id, names in wanted[event.tenant]:
                    if event.name in names:
                        created += self._insert(tx, sub_id, event.tenant, event.id, event.name, body, now)
        return created

    def ping(self, subscription: Subscription, now: float | None = None) -> str:
        """A `webhook.ping` delivery to one subscription (whatever its events): tests the receiver."""
        self._migrate()
        now = time.time() if now is None else now
        event_id = f"evt_{uuid.uuid4().hex}"
        body = json.dumps(
            {"id": event_id, "type": PING_EVENT, "created": int(now), "tenant": subscription.tenant,
             "data": {"subscription": subscription.id}},
            separators=(",", ":"), sort_keys=True,
        )  # fmt: skip
        with self.state.transaction() as tx:
            self._insert(tx, subscription.id, subscription.tenant, event_id, PING_EVENT, body, now)
            row = tx.fetchone(
                "SELECT id FROM webhook_deliveries WHERE subscription_id = ? AND event_id = ?",
                (subscription.id, event_id),
            )
        assert row is not None
        return str(row[0])

    @staticmethod
    def _insert(tx: Any, sub_id: str, tenant: str, event_id: str, name: str, body: str, now: float) -> int:  # noqa: PLR0917
        return int(
            tx.execute(
                "INSERT INTO webhook_deliveries (id, subscription_id, tenant, event_id, event, body, status, attempts,"
                " next_attempt, created, updated) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)"
                " ON CONFLICT (subscription_id, event_id) DO NOTHING",
                (f"whd_{uuid.uuid4().hex[:24]}", sub_id, tenant, event_id, name, body, now, now, now),
            )
        )

    def claim_due(self, owner: str, *, limit: int, lease: float, now: float | None = None) -> list[Delivery]:
        """Take up to `limit` due deliveries for `lease` seconds: pending ones whose next attempt
        has come, and those whose lease ran out (their process died mid-attempt)."""
        self._migrate()
        now = time.time() if now is None else now
        claimed: list[tuple[Any, ...]] = []
        with self.state.transaction() as tx:
            rows = tx.fetchall(
                "SELECT d.id FROM webhook_deliveries d WHERE (d.status = 'pending' AND d.next_attempt <= ?)"
                " OR (d.status = 'sending' AND d.lease_until < ?) ORDER BY d.next_attempt LIMIT ?",
                (now, now, limit),
            )
            for (delivery_id,) in rows:
                # Conditional on the state just read: of two replicas, one changes the row.
                changed = tx.execute(
                    "UPDATE webhook_deliveries SET status = 'sending', lease_owner = ?, lease_until = ?, updated = ?"
                    " WHERE id = ? AND ((status = 'pending' AND next_attempt <= ?)"
                    " OR (status = 'sending' AND lease_until < ?))",
                    (owner, now + lease, now, delivery_id, now, now),
                )
                if changed:
                    row = tx.fetchone(
                        "SELECT d.id, d.subscription_id, d.tenant, d.event, d.body, d.attempts, s.url, s.secret,"
                        " s.previous_secret, s.previous_expires FROM webhook_deliveries d"
                        " JOIN webhook_subscriptions s ON s.id = d.subscription_id"
                        " WHERE d.id = ?",
                        (delivery_id,),
                    )
                    if row is not None:
                        claimed.append(row)
        out = []
        for row in claimed:
            sealed = [str(row[7])]
            if row[8] is not None and row[9] is not None and float(row[9]) > now:
                sealed.append(str(row[8]))
            try:
                opened = tuple(self.sealer.open(_PURPOSE, str(row[2]), str(row[1]), value) for value in sealed)
            except VeilError:
                opened = ()  # the key ring lost the tenant's key (an in-memory vault restarted): cannot sign
            out.append(
                Delivery(str(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]).encode(), int(row[5]),
                         str(row[6]), opened)
            )  # fmt: skip
        return out

    def record_attempt(
        self, delivery: Delivery, owner: str, *, status: Status, status_code: int | None, error: str | None,
        latency_ms: float, next_attempt: float | None, now: float | None = None,
    ) -> None:  # fmt: skip
        """Log one attempt and move the delivery on (delivered, failed, or pending until `next_attempt`)."""
        now = time.time() if now is None else now
        attempt = delivery.attempts + 1
        with self.state.transaction() as tx:
            changed = tx.execute(
                "UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt = ?, lease_owner = NULL,"
                " lease_until = NULL, last_status_code = ?, last_error = ?, last_latency_ms = ?, updated = ?"
                " WHERE id = ? AND lease_owner = ? AND status = 'sending'",
                (status, attempt, next_attempt, status_code, error, latency_ms, now, delivery.id, owner),
            )
            if changed:
                tx.execute(
                    "INSERT INTO webhook_attempts (delivery_id, attempt, time, status_code, error, latency_ms,"
                    " next_attempt) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id, attempt) DO NOTHING",
                    (delivery.id, attempt, now, status_code, error, latency_ms, next_attempt),
                )

    def prune(self, older_than: float) -> int:
        """Delete finished deliveries (delivered or failed) last updated before `older_than`, with their log."""
        self._migrate()
        with self.state.transaction() as tx:
            tx.execute(
                "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries"
                " WHERE status IN ('delivered', 'failed') AND updated < ?)",
                (older_than,),
            )
            return tx.execute(
                "DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'failed') AND updated < ?",
                (older_than,),
            )

    def seconds_to_next_due(self, now: float | None = None) -> float | None:
        self._migrate()
        now = time.time() if now is None else now
        with self.state.transaction() as tx:
            row = tx.fetchone(
                "SELECT MIN(CASE WHEN status = 'pending' THEN next_attempt ELSE lease_until END)"
                " FROM webhook_deliveries WHERE status IN ('pending', 'sending')"
            )
        if row is None or row[0] is None:
            return None
        return max(0.0, float(row[0]) - now)

    def deliveries(self, tenant: str, subscription_id: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """The delivery log of a subscription, newest first: status, attempts and their outcomes (no body)."""
        self._migrate()
        with self.state.transaction() as tx:
            rows = tx.fetchall(
                "SELECT id, event_id, event, status, attempts, next_attempt, last_status_code, last_error,"
                " last_latency_ms, created, updated FROM webhook_deliveries WHERE subscription_id = ? AND tenant = ?"
                " ORDER BY created DESC, id LIMIT ?",
                (subscription_id, tenant, limit),
            )
            ids = [str(row[0]) for row in rows]
            attempts: dict[str, list[dict[str, Any]]] = {delivery_id: [] for delivery_id in ids}
            if ids:
                marks = ", ".join("?" for _ in ids)
                sql = f"SELECT {_ATTEMPT_COLUMNS} FROM webhook_attempts WHERE delivery_id IN ({marks})"  # noqa: S608
                for delivery_id, number, at, code, error, latency, following in tx.fetchall(
                    sql + " ORDER BY delivery_id, attempt", ids
                ):
                    attempts[str(delivery_id)].append(
                        {"attempt": int(number), "time": float(at), "status_code": code, "error": error,
                         "latency_ms": round(float(latency), 3), "next_attempt": following}
                    )  # fmt: skip
        return [_delivery_dict(row, attempts[str(row[0])]) for row in rows]


_ATTEMPT_COLUMNS = "delivery_id, attempt, time, status_code, error, latency_ms, next_attempt"


def _delivery_dict(row: Sequence[Any], log: list[dict[str, Any]]) -> dict[str, Any]:
    latency = round(float(row[8]), 3) if row[8] is not None else None
    return {
        "id": row[0], "object": "webhook_delivery", "event_id": row[1], "event": row[2], "status": row[3],
        "attempts": int(row[4]), "next_attempt": row[5] if row[3] == "pending" else None,
        "last_status_code": row[6], "last_error": row[7], "last_latency_ms": latency,
        "created": float(row[9]), "updated": float(row[10]), "log": log,
    }  # fmt: skip
