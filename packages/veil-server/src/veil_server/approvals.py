"""Dual-control reversal for the server: veil.reveal.DualControl on the state database.

`POST /v1/anonymization/reverse` reveals a stored scope's mapping (token → value) only with the
approvals of the core's dual control: a requester (scope `reverse`) asks with a reason, admins of
the same tenant (never the requester, each once) approve and get one-time approval tokens, the
requester presents them. Requests and approvals live in `approval_requests`, the audit log in
`audit_records`, both in the gateway's StateDB, so every replica sharing PostgreSQL sees the
same requests, one approval token is spent once across replicas, and one hash-chained log
(`AuditLog.verify()`) covers every step: request, approve, reveal and each refusal.

Updates are atomic: a request's row is read and written in one transaction, locked first (SQLite
`BEGIN IMMEDIATE`, PostgreSQL `SELECT … FOR UPDATE`), so two reveals racing with the same
tokens reveal once. The reason, which may name a person, is sealed at rest (veil_server.sealing).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from veil.audit import GENESIS, AuditLog, AuditRecord
from veil.crypto.keyring import KeyRing
from veil.errors import ApprovalError
from veil.reveal import Approval, DualControl, RevealPolicy, RevealRequest, shown_request_id
from veil_server.sealing import FieldSealer
from veil_server.settings import ReversalSettings
from veil_server.state import StateDB, Transaction

_REASON = "approval-reason"
_PAGE = 1000

APPROVAL_MIGRATION = [
    """CREATE TABLE IF NOT EXISTS approval_requests (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        scope TEXT NOT NULL,
        requester TEXT NOT NULL,
        reason TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        expires DOUBLE PRECISION NOT NULL,
        required INTEGER NOT NULL,
        approvals TEXT NOT NULL,
        revealed INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS approval_requests_tenant ON approval_requests (tenant, created)",
]

AUDIT_MIGRATION = [
    """CREATE TABLE IF NOT EXISTS audit_records (
        seq BIGINT PRIMARY KEY,
        time TEXT NOT NULL,
        event TEXT NOT NULL,
        tenant TEXT NOT NULL,
        actor TEXT,
        details TEXT NOT NULL,
        previous TEXT NOT NULL,
        mac TEXT NOT NULL
    )""",
]


class _Migrated:
    def __init__(self, state: StateDB, name: str, statements: list[str]) -> None:
        self.state = state
        self._name = name
        self._statements = statements

    def _migrate(self) -> None:
        self.state.ensure(self._name, self._statements)


def _approvals_json(approvals: tuple[Approval, ...]) -> str:
    return json.dumps(
        [{"approver": a.approver, "token_hash": a.token_hash, "expires": a.expires, "used": a.used} for a in approvals]
    )


class StateApprovalStore(_Migrated):
    """veil.reveal.ApprovalStore on the StateDB (SQLite or PostgreSQL)."""

    def __init__(self, state: StateDB, sealer: FieldSealer) -> None:
        super().__init__(state, "approvals", APPROVAL_MIGRATION)
        self.sealer = sealer

    def _from_row(self, row: tuple[Any, ...]) -> RevealRequest:
        request_id, tenant = str(row[0]), str(row[1])
        approvals = tuple(
            Approval(str(a["approver"]), str(a["token_hash"]), float(a["expires"]), bool(a["used"]))
            for a in json.loads(row[8])
        )
        return RevealRequest(
            id=request_id, tenant=tenant, scope=str(row[2]), requester=str(row[3]),
            reason=self.sealer.open(_REASON, tenant, request_id, str(row[4])), created=float(row[5]),
            expires=float(row[6]), required=int(row[7]), approvals=approvals, revealed=bool(row[9]),
        )  # fmt: skip

    _COLUMNS = "id, tenant, scope, requester, reason, created, expires, required, approvals, revealed"

    def save(self, request: RevealRequest) -> None:
        self._migrate()
        reason = self.sealer.seal(_REASON, request.tenant, request.id, request.reason)
        with self.state.transaction() as tx:
            tx.execute(
                f"INSERT INTO approval_requests ({self._COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                (request.id, request.tenant, request.scope, request.requester, reason, request.created,
                 request.expires, request.required, _approvals_json(request.approvals), int(request.revealed)),
            )  # fmt: skip

    def load(self, request_id: str) -> RevealRequest | None:
        self._migrate()
        with self.state.transaction() as tx:
            row = tx.fetchone(f"SELECT {self._COLUMNS} FROM approval_requests WHERE id = ?", (request_id,))  # noqa: S608
        return self._from_row(row) if row is not None else None

    def update(self, request_id: str, change: Callable[[RevealRequest], RevealRequest]) -> RevealRequest:
        """Read, change and write one request under a row lock: concurrent updates serialise."""
        self._migrate()
        lock = " FOR UPDATE" if self.state.dialect == "postgresql" else ""  # SQLite: BEGIN IMMEDIATE
        with self.state.transaction() as tx:
            sql = f"SELECT {self._COLUMNS} FROM approval_requests WHERE id = ?{lock}"  # noqa: S608 - constants
            row = tx.fetchone(sql, (request_id,))
            if row is None:
                raise ApprovalError(f"no reveal request {shown_request_id(request_id)}", code="not_found")
            current = self._from_row(row)
            updated = change(current)
            if (updated.id, updated.tenant, updated.scope, updated.requester) != (
                current.id, current.tenant, current.scope, current.requester,
            ):  # fmt: skip
                raise ApprovalError("a reveal request's identity cannot change", code="invalid_request")
            tx.execute(
                "UPDATE approval_requests SET approvals = ?, revealed = ?, expires = ? WHERE id = ?",
                (_approvals_json(updated.approvals), int(updated.revealed), updated.expires, request_id),
            )
        return updated

    def requests(self, tenant: str, *, limit: int = 100) -> list[RevealRequest]:
        self._migrate()
        with self.state.transaction() as tx:
            rows = tx.fetchall(
                f"SELECT {self._COLUMNS} FROM approval_requests WHERE tenant = ?"  # noqa: S608 - constants
                " ORDER BY created DESC, id LIMIT ?",
                (tenant, limit),
            )
        return [self._from_row(row) for row in rows]


class StateAuditStore(_Migrated):
    """veil.audit.AuditStore on the StateDB: one hash chain shared by every replica.

    An append reads the head and inserts the next record in one transaction, serialised across
    processes (SQLite's write lock; a PostgreSQL transaction-level advisory lock), so the chain
    never forks. The record's time is stored as the exact text the MAC covers."""

    def __init__(self, state: StateDB) -> None:
        super().__init__(state, "audit", AUDIT_MIGRATION)

    def append(self, build: Callable[[int, str], AuditRecord]) -> AuditRecord:
        self._migrate()
        with self.state.transaction() as tx:
            if self.state.dialect == "postgresql":
                tx.execute("SELECT pg_advisory_xact_lock(hashtext(?))", ("veil_server.audit_records",))
            row = tx.fetchone("SELECT seq, mac FROM audit_records ORDER BY seq DESC LIMIT 1")
            record = build(int(row[0]) + 1 if row else 1, str(row[1]) if row else GENESIS)
            tx.execute(
                "INSERT INTO audit_records (seq, time, event, tenant, actor, details, previous, mac)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (record.seq, repr(record.time), record.event, record.tenant, record.actor,
                 json.dumps(record.details, sort_keys=True), record.previous, record.mac),
            )  # fmt: skip
        return record

    def records(self) -> Iterator[AuditRecord]:
        """Every record in sequence order, read a page at a time."""
        self._migrate()
        after = 0
        while True:
            with self.state.transaction() as tx:
                rows = _page(tx, after)
            for seq, at, event, tenant, actor, details, previous, mac in rows:
                try:
                    parsed = json.loads(details)
                except ValueError:
                    parsed = {"__corrupt__": True}
                yield AuditRecord(int(seq), float(at), str(event), str(tenant), actor, parsed, str(previous), str(mac))
            if len(rows) < _PAGE:
                return
            after = int(rows[-1][0])


def _page(tx: Transaction, after: int) -> list[tuple[Any, ...]]:
    return tx.fetchall(
        "SELECT seq, time, event, tenant, actor, details, previous, mac FROM audit_records"
        " WHERE seq > ? ORDER BY seq LIMIT ?",
        (after, _PAGE),
    )


def reveal_policy(settings: ReversalSettings) -> RevealPolicy:
    return RevealPolicy(
        required=settings.required_approvals,
        approvers=frozenset(settings.approvers),
        request_ttl=settings.request_ttl,
        approval_ttl=settings.approval_ttl,
    )


class Reversal:
    """The gateway's dual control: requests, approvals and reveals of a tenant's scopes."""

    def __init__(
        self,
        state: StateDB,
        keyring: KeyRing,
        mapping_of: Callable[[str, str], dict[str, str]],
        settings: ReversalSettings,
    ) -> None:
        self.store = StateApprovalStore(state, FieldSealer(keyring))
        self.audit = AuditLog(StateAuditStore(state), keyring)
        self.control = DualControl(mapping_of, self.audit, policy=reveal_policy(settings), store=self.store)

    def check_tenant(self, tenant: str, request_id: str, *, actor: str, step: str) -> RevealRequest:
        """The tenant's request. Another tenant's is refused exactly like an unknown one (and audited)."""
        found = self.store.load(request_id)
        if found is None or found.tenant != tenant:
            shown = shown_request_id(request_id)
            refused = ApprovalError(f"no reveal request {shown} in this tenant", code="not_found")
            self.audit.record("reveal_refused", tenant=tenant, actor=actor, request=shown, step=step,
                              code=refused.code)  # fmt: skip
            raise refused
        return found

    def describe(self, request: RevealRequest, now: float) -> dict[str, Any]:
        """A request as an admin sees it: who asked, why, who approved; never a token or a value."""
        if request.revealed:
            status = "revealed"
        elif request.expires <= now:
            status = "expired"
        elif len(request.approvals) >= request.required:
            status = "approved"
        else:
            status = "pending"
        return {
            "id": request.id, "object": "approval_request", "scope": request.scope, "requester": request.requester,
            "reason": request.reason, "required": request.required, "approvals": len(request.approvals),
            "approvers": [a.approver for a in request.approvals], "status": status,
            "created": int(request.created), "expires_at": int(request.expires),
        }  # fmt: skip


__all__ = ["Reversal", "StateApprovalStore", "StateAuditStore"]
