"""API keys created at run time (`veil keys create`, `POST /v1/admin/keys`), kept in the state database.

A key reads `sk-veil-<id>_<secret>`: the id (16 hex digits) is public, names the key in logs,
usage rows and the admin API, and is how the store finds the key's row; the secret is 32 random
bytes from `secrets` (43 URL-safe characters). The store keeps only the SHA-256 of the whole key
(a hash that cannot be reversed, and needs no salt or stretching for 256 random bits) and its
last four characters for display; a presented key is compared to the stored digest with
`hmac.compare_digest`. The full key exists once, in the answer to its creation.

Revocation sets `revoked_at`; every request reads the key's row (no cache), so a revoked key
is refused by every replica sharing the database from the next request on.

The store also keeps the signing secret of the access tokens (`signing_secret`) when no
`server.jwt_secret_env` is configured: generated once, the first replica to ask wins, the
others read it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from veil.detect.engine import default_detectors
from veil.detect.policy import Policy
from veil.errors import VeilError
from veil_server.auth import Principal
from veil_server.errors import listed_names
from veil_server.settings import SCOPES, KeyLimits, KeyPolicy
from veil_server.state import StateDB

KEY_PREFIX = "sk-veil-"
SECRET_BYTES = 32
_KEY = re.compile(r"sk-veil-([0-9a-f]{16})_[A-Za-z0-9_-]{43}")
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_NAME_MAX = 100

TABLES = [
    """CREATE TABLE IF NOT EXISTS keys_api (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        name TEXT,
        digest TEXT NOT NULL,
        last4 TEXT NOT NULL,
        scopes TEXT NOT NULL,
        policy TEXT NOT NULL,
        limits TEXT NOT NULL,
        created BIGINT NOT NULL,
        created_by TEXT,
        revoked_at BIGINT
    )""",
    "CREATE INDEX IF NOT EXISTS keys_api_tenant ON keys_api (tenant, created)",
    "CREATE TABLE IF NOT EXISTS keys_secret (name TEXT PRIMARY KEY, value TEXT NOT NULL, created BIGINT NOT NULL)",
]

_COLUMNS = "id, tenant, name, last4, scopes, policy, limits, created, created_by, revoked_at"


class KeyStoreError(ValueError):
    """A key cannot be created as asked (unknown scope, bad tenant …); the message names the field."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A stored key, without its secret: what `list`, `get` and the admin API show."""

    id: str
    tenant: str
    name: str | None
    scopes: tuple[str, ...]
    policy: KeyPolicy
    limits: KeyLimits
    created: int
    created_by: str | None
    revoked_at: int | None
    last4: str

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def redacted(self) -> str:
        """How the key is shown after its creation: id and last four characters only."""
        return f"{KEY_PREFIX}{self.id}_…{self.last4}"

    def principal(self, credential: str = "key") -> Principal:
        return Principal(self.id, self.tenant, frozenset(self.scopes), self.policy, self.limits, credential=credential)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    record: ApiKeyRecord
    key: str
    """The full key: shown to its creator once, never stored."""


def key_id_of(presented: str) -> str | None:
    """The id of a presented key in the stored-key form, else None (a config key, a token …)."""
    match = _KEY.fullmatch(presented)
    return match.group(1) if match else None


def valid_key_id(key_id: str) -> bool:
    return bool(_KEY_ID.fullmatch(key_id))


def digest_of(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes, de-duplicated and sorted; unknown or no scope is an error."""
    chosen = tuple(sorted(set(scopes)))
    if not chosen:
        raise KeyStoreError(f"a key needs at least one scope; known: {', '.join(sorted(SCOPES))}", param="scopes")
    unknown = [scope for scope in chosen if scope not in SCOPES]
    if unknown:
        raise KeyStoreError(
            f"unknown scope(s) {listed_names(unknown)}; known: {', '.join(sorted(SCOPES))}", param="scopes"
        )
    return chosen


def check_tenant(tenant: str) -> str:
    if not _TENANT.fullmatch(tenant):
        raise KeyStoreError("tenant: 1 to 64 letters, digits and . _ - (starting with a letter or digit)",
                            param="tenant")  # fmt: skip
    return tenant


def check_key_policy(policy: KeyPolicy, server: Policy) -> KeyPolicy:
    """The key's policy with its entity names upper-cased and checked against the server's policy:
    a key may restrict detection to some entity types, never add one the server does not report."""
    if policy.entities is None:
        return policy
    names = sorted({name.strip().upper() for name in policy.entities})
    if not names:
        raise KeyStoreError("policy.entities: give at least one entity type, or leave it out (all)",
                            param="policy.entities")  # fmt: skip
    unknown = [name for name in names if name not in server.known_entities]
    if unknown:
        raise KeyStoreError(
            f"policy.entities: unknown entity type(s) {listed_names(unknown)}; "
            f"known: {', '.join(sorted(server.known_entities))}",
            param="policy.entities",
        )
    outside = [name for name in names if not server.reports(name)]
    if outside:
        raise KeyStoreError(
            f"policy.entities: the server's policy does not report {', '.join(outside)}; a key can only narrow it",
            param="policy.entities",
        )
    try:
        default_detectors(server.with_changes(entities=frozenset(names)))
    except VeilError as exc:  # PERSON, LOCATION or ORGANIZATION without spaCy installed
        raise KeyStoreError(f"policy.entities: {exc}", param="policy.entities") from None
    return policy.model_copy(update={"entities": names})


class KeyStore:
    """The `keys_api` table of the state database. Every method is one short transaction."""

    def __init__(self, state: StateDB) -> None:
        self.state = state
        state.migrate("keys", TABLES)

    # -- writes ------------------------------------------------------------------------------

    def create(
        self,
        *,
        tenant: str,
        scopes: Iterable[str],
        name: str | None = None,
        policy: KeyPolicy | None = None,
        limits: KeyLimits | None = None,
        created_by: str | None = None,
    ) -> CreatedKey:
        """A new key; its full text is in the result and nowhere else."""
        check_tenant(tenant)
        chosen = check_scopes(scopes)
        if name is not None and (len(name) > _NAME_MAX or not name.isprintable()):
            raise KeyStoreError(f"name: at most {_NAME_MAX} printable characters", param="name")
        policy = policy or KeyPolicy()
        limits = limits or KeyLimits()
        key_id = secrets.token_hex(8)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode()
        key = f"{KEY_PREFIX}{key_id}_{secret}"
        created = int(time.time())
        record = ApiKeyRecord(key_id, tenant, name, chosen, policy, limits, created, created_by, None, key[-4:])
        with self.state.transaction() as tx:
            tx.execute(
                "INSERT INTO keys_api (id, tenant, name, digest, last4, scopes, policy, limits, created, created_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key_id, tenant, name, digest_of(key), record.last4, json.dumps(list(chosen)),
                 policy.model_dump_json(), limits.model_dump_json(), record.created, created_by),
            )  # fmt: skip
        return CreatedKey(record, key)

    def revoke(self, key_id: str, *, tenant: str | None = None) -> ApiKeyRecord | None:
        """Revoke a key (of `tenant`, when given); None when there is no such key. Revoking a
        revoked key changes nothing (its first `revoked_at` stays)."""
        if not valid_key_id(key_id):
            return None
        with self.state.transaction() as tx:
            where, params = _where(key_id, tenant)
            tx.execute(f"UPDATE keys_api SET revoked_at = ? WHERE {where} AND revoked_at IS NULL",  # noqa: S608
                       (int(time.time()), *params))  # fmt: skip
            row = tx.fetchone(f"SELECT {_COLUMNS} FROM keys_api WHERE {where}", params)  # noqa: S608
        return _record(row) if row is not None else None

    # -- reads -------------------------------------------------------------------------------

    def get(self, key_id: str, *, tenant: str | None = None) -> ApiKeyRecord | None:
        if not valid_key_id(key_id):
            return None
        where, params = _where(key_id, tenant)
        with self.state.read() as tx:
            row = tx.fetchone(f"SELECT {_COLUMNS} FROM keys_api WHERE {where}", params)  # noqa: S608
        return _record(row) if row is not None else None

    def list(self, *, tenant: str | None = None) -> list[ApiKeyRecord]:
        """Every key (of `tenant`, when given), revoked ones included, oldest first."""
        sql = f"SELECT {_COLUMNS} FROM keys_api"  # noqa: S608
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql += " WHERE tenant = ?"
            params = (tenant,)
        with self.state.read() as tx:
            rows = tx.fetchall(sql + " ORDER BY created, id", params)
        return [_record(row) for row in rows]

    def verify(self, presented: str) -> ApiKeyRecord | None:
        """The key's record when `presented` is a stored key (revoked or not: the caller decides
        what to say), else None. The digest is compared in constant time."""
        key_id = key_id_of(presented)
        if key_id is None:
            return None
        with self.state.read() as tx:
            row = tx.fetchone(f"SELECT digest, {_COLUMNS} FROM keys_api WHERE id = ?", (key_id,))  # noqa: S608
        expected = row[0] if row is not None else "0" * 64
        matches = hmac.compare_digest(digest_of(presented).encode(), str(expected).encode())
        return _record(row[1:]) if row is not None and matches else None

    def has_any(self) -> bool:
        """True once any key was ever created (revoked ones count: revoking every key must not open the server)."""
        with self.state.read() as tx:
            return tx.fetchone("SELECT 1 FROM keys_api LIMIT 1") is not None

    # -- the access tokens' secret -------------------------------------------------------------

    def signing_secret(self) -> bytes:
        """The stored HS256 secret of the access tokens, created on first use. Replicas that race
        to create it all end up with the first one written."""
        candidate = base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()
        with self.state.transaction() as tx:
            tx.execute("INSERT INTO keys_secret (name, value, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                       ("jwt_hs256", candidate, int(time.time())))  # fmt: skip
            row = tx.fetchone("SELECT value FROM keys_secret WHERE name = ?", ("jwt_hs256",))
        assert row is not None
        return base64.b64decode(row[0])


def _where(key_id: str, tenant: str | None) -> tuple[str, tuple[str, ...]]:
    if tenant is None:
        return "id = ?", (key_id,)
    return "id = ? AND tenant = ?", (key_id, tenant)


def _record(row: tuple[object, ...]) -> ApiKeyRecord:
    key_id, tenant, name, last4, scopes, policy, limits, created, created_by, revoked_at = row
    return ApiKeyRecord(
        id=str(key_id),
        tenant=str(tenant),
        name=None if name is None else str(name),
        scopes=tuple(json.loads(str(scopes))),
        policy=KeyPolicy.model_validate_json(str(policy)),
        limits=KeyLimits.model_validate_json(str(limits)),
        created=int(str(created)),
        created_by=None if created_by is None else str(created_by),
        revoked_at=None if revoked_at is None else int(str(revoked_at)),
        last4=str(last4),
    )
