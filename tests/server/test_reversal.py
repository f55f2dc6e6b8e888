"""Dual-control reversal end to end (POST /v1/approvals, …/approve, /v1/anonymization/reverse) on a
real gateway, with every refusal, the audit chain verified, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_live import serve
from services import POSTGRES_DSN, postgres_schema
from veil_server import Settings, create_app
from veil_server.approvals import StateApprovalStore, StateAuditStore
from veil_server.sealing import FieldSealer
from veil_server.state import StateDB

from veil.audit import AuditLog
from veil.errors import ApprovalError, IntegrityError
from veil.reveal import DualControl, RevealPolicy
from veil.session import Veil

EMAIL, PHONE = "marie.tremblay@exemple.qc.ca", "+1 514 872 3456"
SCOPE = "case-42"
KEYS = {
    "sk-requester": {"name": "requester", "scopes": ["reverse", "anonymize"]},
    "sk-colleague": {"name": "colleague", "scopes": ["reverse"]},
    "sk-admin-a": {"name": "admin-a", "scopes": ["admin"]},
    "sk-admin-b": {"name": "admin-b", "scopes": ["admin"]},
    "sk-admin-c": {"name": "admin-c", "scopes": ["admin"]},
    "sk-chat": {"name": "chat", "scopes": ["chat", "anonymize"]},
    "sk-other-admin": {"name": "other-admin", "tenant": "other", "scopes": ["admin"]},
    "sk-other-requester": {"name": "other-requester", "tenant": "other", "scopes": ["reverse"]},
}


def settings() -> Settings:
    return Settings(
        server={"keys": [{"key": key, **spec} for key, spec in KEYS.items()], "reversal": {"required_approvals": 2}},
        vault={"url": "memory"},
        policy={"ner": "off"},
    )


@pytest.fixture
def gateway(state: StateDB) -> Iterator[tuple[str, Any]]:
    app = create_app(settings(), state=state)
    with serve(app) as base:
        yield base, app.state.gateway


def call(base: str, method: str, path: str, key: str, **options: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", **options.pop("headers", {})}
    return httpx.request(method, f"{base}{path}", headers=headers, **options)


def error_code(answer: httpx.Response) -> tuple[int, str]:
    return answer.status_code, answer.json()["error"]["code"]


def seed(base: str) -> dict[str, str]:
    answer = call(base, "POST", "/v1/anonymize", "sk-requester",
                  json={"text": f"Écrivez à {EMAIL} ou au {PHONE}.", "scope": SCOPE})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["mapping"])


def ask(base: str, key: str = "sk-requester", scope: str = SCOPE) -> str:
    answer = call(base, "POST", "/v1/approvals", key, json={"scope": scope, "reason": "demande d'accès #88"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "pending"
    return str(answer.json()["id"])


def approve(base: str, request_id: str, key: str) -> str:
    answer = call(base, "POST", f"/v1/approvals/{request_id}/approve", key)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["approval_token"])


def reverse(base: str, request_id: str, tokens: list[str], key: str = "sk-requester") -> httpx.Response:
    headers = [("Authorization", f"Bearer {key}")] + [("X-Approval-Token", token) for token in tokens]
    return httpx.post(f"{base}/v1/anonymization/reverse", json={"request_id": request_id}, headers=headers)


def test_two_approvals_from_other_admins_reveal_the_scope_and_every_step_is_audited(
    gateway: tuple[str, Any],
) -> None:
    base, app_gateway = gateway
    mapping = seed(base)
    request_id = ask(base)
    token_a, token_b = approve(base, request_id, "sk-admin-a"), approve(base, request_id, "sk-admin-b")
    listed = call(base, "GET", "/v1/approvals", "sk-admin-c").json()["data"]
    assert listed[0]["id"] == request_id and listed[0]["status"] == "approved"
    assert listed[0]["approvers"] == ["admin-a", "admin-b"] and listed[0]["reason"] == "demande d'accès #88"
    assert "approval_token" not in json.dumps(listed) and token_a not in json.dumps(listed)

    answer = reverse(base, request_id, [token_a, token_b])
    assert answer.status_code == 200, answer.text
    assert answer.json()["mapping"] == mapping and set(mapping.values()) == {EMAIL, PHONE}
    assert answer.json()["scope"] == SCOPE and answer.json()["count"] == 2

    audit = app_gateway.reversal.audit
    verification = audit.verify()
    assert verification.ok, verification.problems
    records = list(audit.store.records())
    assert [r.event for r in records] == ["reveal_request", "approve", "approve", "reveal"]
    assert records[-1].details["approvers"] == ["admin-a", "admin-b"] and records[-1].details["count"] == 2
    dumped = json.dumps([r.to_dict() for r in records])
    for secret in (EMAIL, PHONE, token_a, token_b, "accès #88"):
        assert secret not in dumped
    with app_gateway.state.transaction() as tx:
        (reason,) = tx.fetchone("SELECT reason FROM approval_requests WHERE id = ?", (request_id,)) or ("",)
    assert "#88" not in reason  # sealed at rest


def test_comma_separated_tokens_in_one_header_work_too(gateway: tuple[str, Any]) -> None:
    base, _ = gateway
    seed(base)
    request_id = ask(base)
    tokens = [approve(base, request_id, "sk-admin-a"), approve(base, request_id, "sk-admin-c")]
    answer = call(base, "POST", "/v1/anonymization/reverse", "sk-requester", json={"request_id": request_id},
                  headers={"X-Approval-Token": ", ".join(tokens)})  # fmt: skip
    assert answer.status_code == 200 and answer.json()["count"] == 2


def test_every_refusal_is_clear_and_audited(gateway: tuple[str, Any]) -> None:
    base, app_gateway = gateway
    seed(base)
    request_id = ask(base)
    # Scopes: a key without `reverse` cannot ask nor reveal; without `admin` cannot approve nor list.
    assert error_code(call(base, "POST", "/v1/approvals", "sk-chat", json={"scope": SCOPE, "reason": "x"})) == (
        403, "insufficient_scope",
    )  # fmt: skip
    assert error_code(call(base, "POST", f"/v1/approvals/{request_id}/approve", "sk-requester")) == (
        403, "insufficient_scope",
    )  # fmt: skip
    assert error_code(call(base, "GET", "/v1/approvals", "sk-requester"))[0] == 403
    # No approvals, then too few.
    assert error_code(reverse(base, request_id, [])) == (403, "insufficient_approvals")
    assert "X-Approval-Token" in reverse(base, request_id, []).json()["error"]["message"]
    token_a = approve(base, request_id, "sk-admin-a")
    assert error_code(reverse(base, request_id, [token_a])) == (403, "insufficient_approvals")
    # The same approver twice: refused at approval, and one token sent twice counts once.
    assert error_code(call(base, "POST", f"/v1/approvals/{request_id}/approve", "sk-admin-a")) == (
        409, "already_approved",
    )  # fmt: skip
    assert error_code(reverse(base, request_id, [token_a, token_a])) == (403, "insufficient_approvals")
    # A forged token does not count.
    assert error_code(reverse(base, request_id, [token_a, "apv_forged"])) == (403, "insufficient_approvals")
    token_b = approve(base, request_id, "sk-admin-b")
    # Another tenant: its admin cannot approve, its requester cannot reveal (404 like an unknown id).
    assert error_code(call(base, "POST", f"/v1/approvals/{request_id}/approve", "sk-other-admin")) == (
        404, "approval_request_not_found",
    )  # fmt: skip
    assert error_code(reverse(base, request_id, [token_a, token_b], key="sk-other-requester")) == (
        404, "approval_request_not_found",
    )  # fmt: skip
    assert call(base, "GET", "/v1/approvals", "sk-other-admin").json()["data"] == []
    # A colleague of the same tenant cannot use the requester's approvals.
    assert error_code(reverse(base, request_id, [token_a, token_b], key="sk-colleague")) == (403, "not_requester")
    # Used once, then never again.
    assert reverse(base, request_id, [token_a, token_b]).status_code == 200
    assert error_code(reverse(base, request_id, [token_a, token_b])) == (409, "approval_request_used")
    assert error_code(call(base, "POST", f"/v1/approvals/{request_id}/approve", "sk-admin-c")) == (
        409, "approval_request_used",
    )  # fmt: skip
    # Tokens of one request do not open another.
    second = ask(base)
    assert error_code(reverse(base, second, [token_a, token_b])) == (403, "insufficient_approvals")
    # Self-approval: an admin who asked cannot approve their own request.
    own = ask(base, key="sk-admin-c")
    assert error_code(call(base, "POST", f"/v1/approvals/{own}/approve", "sk-admin-c")) == (403, "self_approval")
    # Unknown ids, bad bodies.
    assert error_code(reverse(base, "rvl_nope", [token_a])) == (404, "approval_request_not_found")
    assert error_code(call(base, "POST", "/v1/approvals", "sk-requester", json={"scope": "a b", "reason": "r"})) == (
        400, "invalid_scope",
    )  # fmt: skip
    assert error_code(call(base, "POST", "/v1/approvals", "sk-requester", json={"scope": SCOPE})) == (
        400, "invalid_request",
    )  # fmt: skip

    audit = app_gateway.reversal.audit
    assert audit.verify().ok
    refused = [r.details for r in audit.store.records() if r.event == "reveal_refused"]
    codes = {d["code"] for d in refused}
    assert {"insufficient_approvals", "already_approved", "not_found", "not_requester", "already_revealed",
            "self_approval"} <= codes  # fmt: skip
    assert {d["step"] for d in refused} == {"approve", "reveal"}


def test_an_expired_request_is_refused(gateway: tuple[str, Any]) -> None:
    base, app_gateway = gateway
    seed(base)
    request_id = ask(base)
    tokens = [approve(base, request_id, "sk-admin-a"), approve(base, request_id, "sk-admin-b")]
    control = app_gateway.reversal.control
    control.clock = lambda: time.time() + 2 * 24 * 3600  # two days later: the request (24 h) has expired
    assert error_code(reverse(base, request_id, tokens)) == (409, "approval_request_expired")
    assert error_code(call(base, "POST", f"/v1/approvals/{request_id}/approve", "sk-admin-c")) == (
        409, "approval_request_expired",
    )  # fmt: skip
    listed = call(base, "GET", "/v1/approvals", "sk-admin-a").json()["data"]
    assert listed[0]["status"] in ("approved", "expired")


def test_concurrent_reveals_with_the_same_tokens_reveal_once(state: StateDB) -> None:
    veil = Veil()
    veil.session(SCOPE, tenant="default").anonymize(f"Écrivez à {EMAIL}")
    store = StateApprovalStore(state, FieldSealer(veil.keyring))
    control = DualControl(veil.reveal_mapping, AuditLog(veil.audit.store, veil.keyring),
                          policy=RevealPolicy(required=2), store=store)  # fmt: skip
    request = control.request(requester="alice", tenant="default", scope=SCOPE, reason="ticket 1")
    tokens = [control.approve(request.id, approver="bob"), control.approve(request.id, approver="carol")]
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        try:
            control.reveal(request.id, requester="alice", approval_tokens=tokens)
            result = "revealed"
        except ApprovalError as exc:
            result = exc.code
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already_revealed"] * 7 + ["revealed"]


def test_an_unreachable_state_database_fails_closed_with_503() -> None:
    schemas = postgres_schema()
    state = StateDB(POSTGRES_DSN, schema=next(schemas))
    try:
        with serve(create_app(settings(), state=state)) as base:
            seed(base)
            request_id = ask(base)
            tokens = [approve(base, request_id, "sk-admin-a"), approve(base, request_id, "sk-admin-b")]
            state.close()  # the database goes away
            assert error_code(reverse(base, request_id, tokens)) == (503, "state_unavailable")
            assert error_code(call(base, "POST", "/v1/approvals", "sk-requester",
                                   json={"scope": SCOPE, "reason": "r"})) == (503, "state_unavailable")  # fmt: skip
            assert error_code(call(base, "GET", "/v1/approvals", "sk-admin-a")) == (503, "state_unavailable")
    finally:
        next(schemas, None)


def test_only_listed_approvers_may_approve_when_a_list_is_configured(tmp_path: Path) -> None:
    listed = settings().model_copy(deep=True)
    listed.server.reversal.approvers = ["admin-a", "admin-b"]
    state = StateDB(str(tmp_path / "server.db"))
    with serve(create_app(listed, state=state)) as base:
        seed(base)
        request_id = ask(base)
        assert error_code(call(base, "POST", f"/v1/approvals/{request_id}/approve", "sk-admin-c")) == (
            403, "approver_not_eligible",
        )  # fmt: skip
        assert approve(base, request_id, "sk-admin-a").startswith("apv_")
    state.close()


def test_a_list_of_approvers_shorter_than_the_approvals_required_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="fewer approvers"):
        Settings(server={"reversal": {"required_approvals": 3, "approvers": ["a", "b"]}})


def test_concurrent_audit_appends_keep_one_verifiable_chain(state: StateDB) -> None:
    veil = Veil()
    audit = AuditLog(StateAuditStore(state), veil.keyring)

    def write(actor: str) -> None:
        for n in range(15):
            audit.record("approve", tenant="default", actor=actor, request=f"rvl_{actor}_{n}", approvals=n)

    threads = [threading.Thread(target=write, args=(f"admin-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    verification = audit.verify()
    assert verification.ok, verification.problems
    assert verification.count == verification.head_seq == 60


def test_an_edited_or_deleted_audit_record_is_detected(state: StateDB) -> None:
    veil = Veil()
    audit = AuditLog(StateAuditStore(state), veil.keyring)
    for n in range(5):
        audit.record("reveal_request", tenant="default", actor="alice", request=f"rvl_{n}", required=2)
    head = audit.verify()
    with state.transaction() as tx:
        tx.execute("UPDATE audit_records SET actor = ? WHERE seq = ?", ("mallory", 2))
    assert any("MAC mismatch" in problem for problem in audit.verify().problems)
    with state.transaction() as tx:
        tx.execute("UPDATE audit_records SET actor = ? WHERE seq = ?", ("alice", 2))
        tx.execute("DELETE FROM audit_records WHERE seq = ?", (5,))
    assert audit.verify().ok  # a truncated tail is only visible against a head kept elsewhere:
    assert not audit.verify(expected_head=(head.head_seq, head.head_mac)).ok


def test_a_sealed_reason_moved_to_another_request_does_not_open(state: StateDB) -> None:
    veil = Veil()
    store = StateApprovalStore(state, FieldSealer(veil.keyring))
    control = DualControl(veil.reveal_mapping, veil.audit, store=store)
    first = control.request(requester="alice", tenant="default", scope="a", reason="ticket 1")
    second = control.request(requester="alice", tenant="default", scope="b", reason="ticket 2")
    with state.transaction() as tx:
        (sealed,) = tx.fetchone("SELECT reason FROM approval_requests WHERE id = ?", (first.id,)) or ("",)
        tx.execute("UPDATE approval_requests SET reason = ? WHERE id = ?", (sealed, second.id))
    assert store.load(first.id) is not None
    with pytest.raises(IntegrityError):
        store.load(second.id)


def access_token(base: str, key: str) -> str:
    answer = call(base, "POST", "/v1/auth/token", key)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_an_access_token_carries_its_keys_identity_for_dual_control(gateway: tuple[str, Any]) -> None:
    """Self-approval cannot be dodged with a token of one's own key, and a requester may reveal
    with a token of the key that asked (the identity is the key, whatever the credential)."""
    base, _ = gateway
    seed(base)
    own = ask(base, key="sk-admin-c")
    assert error_code(call(base, "POST", f"/v1/approvals/{own}/approve", access_token(base, "sk-admin-c"))) == (
        403, "self_approval",
    )  # fmt: skip
    request_id = ask(base)
    tokens = [approve(base, request_id, access_token(base, "sk-admin-a")), approve(base, request_id, "sk-admin-b")]
    assert error_code(reverse(base, request_id, tokens, key=access_token(base, "sk-colleague"))) == (
        403, "not_requester",
    )  # fmt: skip
    assert reverse(base, request_id, tokens, key=access_token(base, "sk-requester")).status_code == 200
    # Replayed, with the other credential of the same key: still used once.
    assert error_code(reverse(base, request_id, tokens)) == (409, "approval_request_used")
