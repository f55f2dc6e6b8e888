"""Dual control: reading stored mappings outside the normal restore path needs N-of-M approvals.

    request  = control.request(requester="alice", scope="conv-42", reason="subject access request #88")
    token_b  = control.approve(request.id, approver="bob")      # each approver gets a one-time token
    token_c  = control.approve(request.id, approver="carol")
    mapping  = control.reveal(request.id, requester="alice", approval_tokens=[token_b, token_c])

Rules: approvers must be eligible (the policy's list), distinct, and not the requester; an
approval token is single-use, expires, is stored only as a hash and compared in constant time;
a request expires; every step (request, approve, reveal, refusal) is written to the audit log
with ids and counts only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from veil.audit import AuditLog
from veil.errors import ApprovalError, ConfigError

_REQUEST_ID = re.compile(r"rvl_[0-9a-z_]{1,40}")


def shown_request_id(request_id: object) -> str:
    """A request id as errors and audit records may repeat it: as given when it has the shape of
    one, else a placeholder (a client's mistake may put personal data where the id goes)."""
    return request_id if isinstance(request_id, str) and _REQUEST_ID.fullmatch(request_id) else "(not a request id)"


@dataclass(frozen=True, slots=True)
class RevealPolicy:
    required: int = 2
    approvers: frozenset[str] = frozenset()
    """Who may approve; empty means anyone but the requester."""
    request_ttl: float = 24 * 3600
    approval_ttl: float = 3600

    def __post_init__(self) -> None:
        if self.required < 1:
            raise ConfigError("reveal policy: required approvals must be at least 1")
        if self.approvers and len(self.approvers) < self.required:
            raise ConfigError("reveal policy: fewer eligible approvers than required approvals")


@dataclass(frozen=True, slots=True)
class Approval:
    approver: str
    token_hash: str
    expires: float
    used: bool = False


@dataclass(frozen=True, slots=True)
class RevealRequest:
    id: str
    tenant: str
    scope: str
    requester: str
    reason: str
    created: float
    expires: float
    required: int
    approvals: tuple[Approval, ...] = field(default=())
    revealed: bool = False


class ApprovalStore(Protocol):
    def save(self, request: RevealRequest) -> None: ...

    def load(self, request_id: str) -> RevealRequest | None: ...

    def update(self, request_id: str, change: Callable[[RevealRequest], RevealRequest]) -> RevealRequest:
        """Atomically replace a request by change(request)."""
        ...


class MemoryApprovalStore:
    def __init__(self) -> None:
        self._requests: dict[str, RevealRequest] = {}
        self._lock = threading.Lock()

    def save(self, request: RevealRequest) -> None:
        with self._lock:
            self._requests[request.id] = request

    def load(self, request_id: str) -> RevealRequest | None:
        return self._requests.get(request_id)

    def update(self, request_id: str, change: Callable[[RevealRequest], RevealRequest]) -> RevealRequest:
        with self._lock:
            current = self._requests.get(request_id)
            if current is None:
                raise ApprovalError(f"no reveal request {shown_request_id(request_id)}", code="not_found")
            updated = change(current)
            self._requests[request_id] = updated
            return updated


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class DualControl:
    """Requests, approvals and reveals of a scope's mapping."""

    def __init__(
        self,
        mapping_of: Callable[[str, str], dict[str, str]],
        audit: AuditLog,
        *,
        policy: RevealPolicy | None = None,
        store: ApprovalStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`mapping_of(tenant, scope)` reads a scope's mapping (Veil.reveal_mapping)."""
        self._mapping_of = mapping_of
        self.audit = audit
        self.policy = policy or RevealPolicy()
        self.store = store or MemoryApprovalStore()
        self.clock = clock

    def request(self, *, requester: str, tenant: str, scope: str, reason: str) -> RevealRequest:
        if not requester or not reason.strip():
            raise ApprovalError("a reveal request needs a requester and a reason", code="invalid_request")
        now = self.clock()
        request = RevealRequest(
            id=f"rvl_{secrets.token_hex(12)}", tenant=tenant, scope=scope, requester=requester, reason=reason,
            created=now, expires=now + self.policy.request_ttl, required=self.policy.required,
        )  # fmt: skip
        self.store.save(request)
        self.audit.record("reveal_request", tenant=tenant, actor=requester, request=request.id, scope=scope,
                          required=request.required)  # fmt: skip
        return request

    def approve(self, request_id: str, *, approver: str) -> str:
        """Approve a request; returns the approver's one-time approval token (give it to the requester)."""
        now = self.clock()
        token = f"apv_{secrets.token_urlsafe(24)}"

        def change(request: RevealRequest) -> RevealRequest:
            if request.expires <= now:
                raise ApprovalError(f"reveal request {request.id} has expired", code="expired")
            if request.revealed:
                raise ApprovalError(f"reveal request {request.id} was already used", code="already_revealed")
            if approver == request.requester:
                raise ApprovalError("the requester cannot approve their own reveal request", code="self_approval")
            if self.policy.approvers and approver not in self.policy.approvers:
                raise ApprovalError(f"{approver!r} is not an eligible approver", code="not_eligible")
            if any(a.approver == approver for a in request.approvals):
                raise ApprovalError(
                    f"{approver!r} has already approved reveal request {request.id}", code="already_approved"
                )
            approval = Approval(approver, _hash(token), now + self.policy.approval_ttl)
            return replace(request, approvals=(*request.approvals, approval))

        try:
            request = self.store.update(request_id, change)
        except ApprovalError as refused:
            self._refused(request_id, approver, refused, step="approve")
            raise
        self.audit.record("approve", tenant=request.tenant, actor=approver, request=request.id,
                          approvals=len(request.approvals))  # fmt: skip
        return token

    def _refused(self, request_id: str, actor: str, refused: ApprovalError, *, step: str) -> None:
        stored = self.store.load(request_id)
        self.audit.record("reveal_refused", tenant=stored.tenant if stored else "unknown", actor=actor,
                          request=shown_request_id(request_id), step=step, code=refused.code,
                          reason=str(refused)[:_REASON_CHARS])  # fmt: skip

    def reveal(self, request_id: str, *, requester: str, approval_tokens: Sequence[str]) -> dict[str, str]:
        """The scope's mapping, if enough distinct, valid, unused approval tokens are presented."""
        now = self.clock()
        presented = [_hash(token) for token in approval_tokens]
        approvers: list[str] = []

        def change(request: RevealRequest) -> RevealRequest:
            if request.requester != requester:
                raise ApprovalError(
                    "only the requester can use the approvals of a reveal request", code="not_requester"
                )
            if request.revealed:
                raise ApprovalError(f"reveal request {request.id} was already used", code="already_revealed")
            if request.expires <= now:
                raise ApprovalError(f"reveal request {request.id} has expired", code="expired")
            updated = []
            for approval in request.approvals:
                matched = any(hmac.compare_digest(approval.token_hash, candidate) for candidate in presented)
                if matched and not approval.used and approval.expires > now and approval.approver not in approvers:
                    approvers.append(approval.approver)
                    updated.append(replace(approval, used=True))
                else:
                    updated.append(approval)
            if len(approvers) < request.required:
                raise ApprovalError(
                    f"reveal request {request.id} needs {request.required} valid approvals from distinct approvers; "
                    f"{len(approvers)} presented",
                    code="insufficient_approvals",
                )
            return replace(request, approvals=tuple(updated), revealed=True)

        try:
            request = self.store.update(request_id, change)
        except ApprovalError as refused:
            self._refused(request_id, requester, refused, step="reveal")
            raise
        mapping = self._mapping_of(request.tenant, request.scope)
        self.audit.record("reveal", tenant=request.tenant, actor=requester, request=request.id, scope=request.scope,
                          approvers=sorted(approvers), count=len(mapping))  # fmt: skip
        return mapping


_REASON_CHARS = 200
