"""The audit log: chained, keyed, value-free; and dual control over reveals."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from veil.audit import AuditLog, MemoryAuditStore, SQLiteAuditStore
from veil.crypto import EphemeralKeyProvider, KeyRing, MemoryDataKeyStore
from veil.errors import ApprovalError, ConfigError
from veil.reveal import RevealPolicy
from veil.session import Veil


def test_anonymize_restore_erase_and_rotate_are_audited_without_values(tmp_path: Path) -> None:
    veil = Veil.open(tmp_path / "v")
    session = veil.session("conv-1")
    sent = session.anonymize("Mail jean.roy@exemple.ca, NAS 130 692 544")
    session.restore(sent.text)
    veil.erase_subject("jean.roy@exemple.ca")
    veil.rotate_keys(actor="ops")
    events = [r.event for r in veil.audit.store.records()]
    assert events == ["tokenize", "restore", "erase", "rotate"]
    raw = (tmp_path / "v" / "audit.db").read_bytes()
    assert b"jean.roy" not in raw
    assert b"130 692 544" not in raw
    tokenize = next(iter(veil.audit.store.records()))
    assert tokenize.details == {"scope": "conv-1", "count": 2, "entities": ["CA_SIN:1", "EMAIL:1"]}
    assert veil.audit.verify().ok


def _log(tmp_path: Path) -> tuple[AuditLog, Path]:
    keyring = KeyRing(EphemeralKeyProvider(), MemoryDataKeyStore())
    path = tmp_path / "audit.db"
    log = AuditLog(SQLiteAuditStore(path), keyring)
    for index in range(5):
        log.record("tokenize", tenant="t", scope=f"s{index}", count=index)
    return log, path


def test_an_intact_log_verifies_and_reports_its_head(tmp_path: Path) -> None:
    log, _ = _log(tmp_path)
    result = log.verify()
    assert result.ok
    assert (result.count, result.head_seq) == (5, 5)
    assert log.verify(expected_head=(result.head_seq, result.head_mac)).ok


def test_an_edited_record_is_detected(tmp_path: Path) -> None:
    log, path = _log(tmp_path)
    with sqlite3.connect(path) as db:
        db.execute('UPDATE veil_audit SET details = \'{"count": 99, "scope": "s2"}\' WHERE seq = 3')
    result = log.verify()
    assert not result.ok
    assert any("record 3" in p and "edited" in p for p in result.problems)


def test_a_deleted_record_is_detected(tmp_path: Path) -> None:
    log, path = _log(tmp_path)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM veil_audit WHERE seq = 2")
    result = log.verify()
    assert not result.ok
    assert any("record 3" in p for p in result.problems)


def test_a_truncated_log_is_detected_against_an_exported_head(tmp_path: Path) -> None:
    log, path = _log(tmp_path)
    head = log.verify()
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM veil_audit WHERE seq = 5")
    assert log.verify().ok  # the chain itself is whole ...
    assert not log.verify(expected_head=(head.head_seq, head.head_mac)).ok  # ... but shorter than exported


def test_a_rewritten_chain_needs_the_key(tmp_path: Path) -> None:
    log, path = _log(tmp_path)
    forger = AuditLog(SQLiteAuditStore(tmp_path / "forged.db"), KeyRing(EphemeralKeyProvider(), MemoryDataKeyStore()))
    for index in range(5):
        forger.record("tokenize", tenant="t", scope=f"s{index}", count=0)
    with sqlite3.connect(path) as db, sqlite3.connect(tmp_path / "forged.db") as forged:
        db.execute("DELETE FROM veil_audit")
        db.executemany(
            "INSERT INTO veil_audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)", forged.execute("SELECT * FROM veil_audit")
        )
    assert not log.verify().ok


def test_details_must_be_ids_and_counts() -> None:
    log = AuditLog(MemoryAuditStore(), KeyRing(EphemeralKeyProvider(), MemoryDataKeyStore()))
    with pytest.raises(ConfigError):
        log.record("tokenize", tenant="t", text="x" * 1000)
    with pytest.raises(ConfigError):
        log.record("exfiltrate", tenant="t")


# -- dual control ----------------------------------------------------------------------------------


@pytest.fixture
def veil() -> Veil:
    veil = Veil(audit_traffic=False)
    veil.session("conv-42").anonymize("Mail jean@x.ca, NAS 130 692 544")
    return veil


def test_two_distinct_approvals_reveal_the_mapping_once(veil: Veil) -> None:
    control = veil.dual_control(RevealPolicy(required=2, approvers=frozenset({"bob", "carol", "dave", "erin"})))
    request = control.request(requester="alice", tenant="default", scope="conv-42", reason="access request #88")
    tokens = [control.approve(request.id, approver="bob"), control.approve(request.id, approver="carol")]
    mapping = control.reveal(request.id, requester="alice", approval_tokens=tokens)
    assert mapping == {"{{EMAIL_1}}": "jean@x.ca", "{{CA_SIN_1}}": "130 692 544"}
    with pytest.raises(ApprovalError, match="already used"):
        control.reveal(request.id, requester="alice", approval_tokens=tokens)
    events = [r.event for r in veil.audit.store.records()]
    assert events == ["reveal_request", "approve", "approve", "reveal", "reveal_refused"]
    assert veil.audit.verify().ok


def test_one_approval_is_not_enough(veil: Veil) -> None:
    control = veil.dual_control(RevealPolicy(required=2))
    request = control.request(requester="alice", tenant="default", scope="conv-42", reason="r")
    token = control.approve(request.id, approver="bob")
    with pytest.raises(ApprovalError, match="needs 2"):
        control.reveal(request.id, requester="alice", approval_tokens=[token, token])


def test_the_requester_cannot_approve_and_approvers_must_be_eligible(veil: Veil) -> None:
    control = veil.dual_control(RevealPolicy(required=2, approvers=frozenset({"bob", "carol"})))
    request = control.request(requester="bob", tenant="default", scope="conv-42", reason="r")
    with pytest.raises(ApprovalError, match="own"):
        control.approve(request.id, approver="bob")
    with pytest.raises(ApprovalError, match="eligible"):
        control.approve(request.id, approver="mallory")
    control.approve(request.id, approver="carol")
    with pytest.raises(ApprovalError, match="already approved"):
        control.approve(request.id, approver="carol")


def test_approvals_expire_and_cannot_be_used_by_someone_else(veil: Veil) -> None:
    now = [1000.0]
    control = veil.dual_control(RevealPolicy(required=1, approval_ttl=60))
    control.clock = lambda: now[0]
    request = control.request(requester="alice", tenant="default", scope="conv-42", reason="r")
    token = control.approve(request.id, approver="bob")
    with pytest.raises(ApprovalError, match="only the requester"):
        control.reveal(request.id, requester="mallory", approval_tokens=[token])
    now[0] += 61
    with pytest.raises(ApprovalError, match="needs 1"):
        control.reveal(request.id, requester="alice", approval_tokens=[token])


def test_forged_approval_tokens_are_refused(veil: Veil) -> None:
    control = veil.dual_control(RevealPolicy(required=1))
    request = control.request(requester="alice", tenant="default", scope="conv-42", reason="r")
    control.approve(request.id, approver="bob")
    with pytest.raises(ApprovalError):
        control.reveal(request.id, requester="alice", approval_tokens=["apv_forged"])


def test_refusals_carry_a_code_and_refused_approvals_are_audited(veil: Veil) -> None:
    control = veil.dual_control(RevealPolicy(required=2, approvers=frozenset({"bob", "carol"})))
    request = control.request(requester="bob", tenant="default", scope="conv-42", reason="r")
    codes = []
    for approver in ("bob", "mallory", "carol", "carol"):
        try:
            control.approve(request.id, approver=approver)
        except ApprovalError as refused:
            codes.append(refused.code)
    assert codes == ["self_approval", "not_eligible", "already_approved"]
    with pytest.raises(ApprovalError) as caught:
        control.reveal(request.id, requester="bob", approval_tokens=[])
    assert caught.value.code == "insufficient_approvals"
    with pytest.raises(ApprovalError) as caught:
        control.approve("rvl_unknown", approver="carol")
    assert caught.value.code == "not_found"
    refused = [r.details for r in veil.audit.store.records() if r.event == "reveal_refused"]
    assert [(d["step"], d["code"]) for d in refused] == [
        ("approve", "self_approval"), ("approve", "not_eligible"), ("approve", "already_approved"),
        ("reveal", "insufficient_approvals"), ("approve", "not_found"),
    ]  # fmt: skip
    assert veil.audit.verify().ok


def test_an_impossible_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        RevealPolicy(required=3, approvers=frozenset({"a", "b"}))


def test_an_unknown_request_id_is_neither_repeated_nor_audited_as_given(veil: Veil) -> None:
    # Regression (canary scan): an email sent as the request id came back in the error and was
    # written in clear into the audit log's `reveal_refused` record.
    control = veil.dual_control(RevealPolicy(required=2))
    with pytest.raises(ApprovalError) as refused:
        control.approve("marie.tremblay@exemple.qc.ca", approver="bob")
    assert refused.value.code == "not_found" and "marie" not in str(refused.value)
    (record,) = [r for r in veil.audit.store.records() if r.event == "reveal_refused"]
    assert "marie" not in str(record.to_dict())
    with pytest.raises(ApprovalError, match="rvl_nope"):
        control.approve("rvl_nope", approver="bob")
