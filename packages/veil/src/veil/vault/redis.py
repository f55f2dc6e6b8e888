"""Redis vault: for several processes or machines sharing one vault (extra `veil[redis]`).

Keys are namespaced by a prefix, then by tenant and scope (each hex-encoded, so no name can
reach into another's keys): tenant isolation is in the key space itself.

    {prefix}:{tenant}:{scope}:idx        hash  blind index → token
    {prefix}:{tenant}:{scope}:rec:{tok}  hash  entity, blind index, key id, ciphertext, subject, created, expires
    {prefix}:{tenant}:{scope}:ctr        hash  entity → last number
    {prefix}:{tenant}:subject:{subject}  set   scope + token of a data subject's values
    {prefix}:{tenant}:scopes             set   the tenant's scopes
    {prefix}:{tenant}:dk                 hash  data key id → wrapped key (JSON)
    {prefix}:{tenant}:dk:active:{purpose} string  the active data key's id

A new mapping takes two atomic Lua scripts. The first returns the value's token if it has one,
else reserves the next number of its entity. Python then makes the token and seals the value
with it in the associated data. The second commits the sealed record — unless another writer
committed the same value meanwhile, whose token it then returns (the reserved number is simply
never used). So a value never has two tokens, a number never serves two values, and a process
killed between the scripts leaves an unused number, never a token without its record.
Durability is Redis's: run it with AOF (`appendonly yes`) for a vault that outlives a restart.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from typing import Any

from veil.crypto.envelope import Sealed
from veil.crypto.keyring import DataKey
from veil.crypto.keys import KeyRef
from veil.errors import ConfigError, IntegrityError, VaultUnavailable
from veil.vault.base import NewMapping, TokenFactory, VaultRecord

_RESERVE = """
local token = redis.call('HGET', KEYS[1], ARGV[1])
if token then
    local expires = redis.call('HGET', KEYS[3] .. token, 'expires')
    local alive = redis.call('EXISTS', KEYS[3] .. token) == 1
    if alive and (not expires or expires == '' or tonumber(expires) > tonumber(ARGV[3])) then
        return {1, token}
    end
    redis.call('HDEL', KEYS[1], ARGV[1])
    redis.call('DEL', KEYS[3] .. token)
end
return {0, tostring(redis.call('HINCRBY', KEYS[2], ARGV[2], 1))}
"""

_COMMIT = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
    return existing
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], 'entity', ARGV[3], 'blind_index', ARGV[1], 'key_id', ARGV[4], 'ciphertext', ARGV[5],
           'subject', ARGV[6], 'created', ARGV[7], 'expires', ARGV[8])
if ARGV[6] ~= '' then
    redis.call('SADD', KEYS[3], ARGV[9] .. '\\31' .. ARGV[2])
end
redis.call('SADD', KEYS[4], ARGV[9])
return ARGV[2]
"""

_ADD_DATA_KEY = """
local active = redis.call('GET', KEYS[2])
if active then
    return redis.call('HGET', KEYS[1], active)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == '1' then
    redis.call('SET', KEYS[2], ARGV[1])
end
return ARGV[2]
"""


def _hex(text: str) -> str:
    return text.encode("utf-8").hex()


def _unhex(text: str) -> str:
    return bytes.fromhex(text).decode("utf-8")


class RedisVault:
    """A Vault (and DataKeyStore) in Redis."""

    name = "redis"

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "veil", timeout: float = 5.0) -> None:
        try:
            import redis  # noqa: PLC0415
        except ImportError as exc:
            raise ConfigError("the Redis vault needs redis-py: pip install 'veil[redis]'") from exc
        if not prefix or ":" in prefix:
            raise ConfigError("the Redis key prefix must be non-empty and contain no ':'")
        self._errors = (redis.ConnectionError, redis.TimeoutError)
        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._reserve = self._redis.register_script(_RESERVE)
        self._commit = self._redis.register_script(_COMMIT)
        self._add_key = self._redis.register_script(_ADD_DATA_KEY)
        self.ping()

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except self._errors as exc:
            raise VaultUnavailable(f"the Redis vault is unreachable ({type(exc).__name__})") from None

    def _scope_key(self, tenant: str, scope: str) -> str:
        return f"{self.prefix}:{_hex(tenant)}:{_hex(scope)}"

    def _tenant_key(self, tenant: str) -> str:
        return f"{self.prefix}:{_hex(tenant)}"

    # -- Vault ----------------------------------------------------------------------------------

    @property
    def keys(self) -> RedisVault:
        return self

    def get_or_create(self, tenant: str, scope: str, mapping: NewMapping, make_token: TokenFactory) -> tuple[str, bool]:
        base = self._scope_key(tenant, scope)
        now = time.time()
        existing, value = self._call(
            self._reserve, keys=[f"{base}:idx", f"{base}:ctr", f"{base}:rec:"],
            args=[mapping.blind_index, mapping.entity, repr(now)],
        )  # fmt: skip
        if int(existing):
            return value.decode(), False
        token = make_token(mapping.entity, int(value))
        sealed = mapping.seal(token)
        subject = mapping.subject or ""
        committed = self._call(
            self._commit,
            keys=[f"{base}:idx", f"{base}:rec:{token}", f"{self._tenant_key(tenant)}:subject:{subject}",
                  f"{self._tenant_key(tenant)}:scopes"],
            args=[mapping.blind_index, token, mapping.entity, sealed.key_id, sealed.ciphertext, subject, repr(now),
                  "" if mapping.expires is None else repr(mapping.expires), _hex(scope)],
        ).decode()  # fmt: skip
        self._call(self._redis.sadd, f"{self.prefix}:tenants", _hex(tenant))
        return committed, committed == token

    def _record(self, tenant: str, scope: str, token: str, fields: dict[bytes, bytes]) -> VaultRecord:
        try:
            expires = fields.get(b"expires", b"").decode()
            return VaultRecord(
                tenant=tenant, scope=scope, token=token, entity=fields[b"entity"].decode(),
                blind_index=fields[b"blind_index"].decode(),
                sealed=Sealed(fields[b"key_id"].decode(), bytes(fields[b"ciphertext"])),
                subject=fields.get(b"subject", b"").decode() or None, created=float(fields[b"created"]),
                expires=float(expires) if expires else None,
            )  # fmt: skip
        except (KeyError, ValueError, UnicodeDecodeError):
            raise IntegrityError(f"vault record {token} is corrupt in Redis") from None

    def lookup(self, tenant: str, scope: str, token: str) -> VaultRecord | None:
        fields = self._call(self._redis.hgetall, f"{self._scope_key(tenant, scope)}:rec:{token}")
        if not fields:
            return None
        record = self._record(tenant, scope, token, fields)
        return None if record.expired() else record

    def find(self, tenant: str, scope: str, blind_index: str) -> str | None:
        token = self._call(self._redis.hget, f"{self._scope_key(tenant, scope)}:idx", blind_index)
        if token is None:
            return None
        return token.decode() if self.lookup(tenant, scope, token.decode()) else None

    def records(self, tenant: str, scope: str) -> list[VaultRecord]:
        base = self._scope_key(tenant, scope)
        tokens = [t.decode() for t in self._call(self._redis.hvals, f"{base}:idx")]
        pipe = self._redis.pipeline(transaction=False)
        for token in tokens:
            pipe.hgetall(f"{base}:rec:{token}")
        rows = self._call(pipe.execute)
        records = [self._record(tenant, scope, t, f) for t, f in zip(tokens, rows, strict=True) if f]
        return sorted((r for r in records if not r.expired()), key=lambda r: (r.created, r.token))

    def _delete_records(self, tenant: str, scope: str, records: Sequence[VaultRecord]) -> int:
        base = self._scope_key(tenant, scope)
        pipe = self._redis.pipeline(transaction=True)
        for record in records:
            pipe.hdel(f"{base}:idx", record.blind_index)
            pipe.delete(f"{base}:rec:{record.token}")
            if record.subject:
                pipe.srem(f"{self._tenant_key(tenant)}:subject:{record.subject}", f"{_hex(scope)}\x1f{record.token}")
        self._call(pipe.execute)
        return len(records)

    def _all_records(self, tenant: str, scope: str) -> list[VaultRecord]:
        base = self._scope_key(tenant, scope)
        tokens = [t.decode() for t in self._call(self._redis.hvals, f"{base}:idx")]
        out = []
        for token in tokens:
            fields = self._call(self._redis.hgetall, f"{base}:rec:{token}")
            if fields:
                out.append(self._record(tenant, scope, token, fields))
        return out

    def erase_scope(self, tenant: str, scope: str) -> int:
        return self._delete_records(tenant, scope, self._all_records(tenant, scope))

    def erase_subject(self, tenant: str, subject: str) -> int:
        members = self._call(self._redis.smembers, f"{self._tenant_key(tenant)}:subject:{subject}")
        count = 0
        for member in members:
            scope_hex, _, token = member.decode().partition("\x1f")
            scope = _unhex(scope_hex)
            fields = self._call(self._redis.hgetall, f"{self._scope_key(tenant, scope)}:rec:{token}")
            if fields:
                count += self._delete_records(tenant, scope, [self._record(tenant, scope, token, fields)])
        self._call(self._redis.delete, f"{self._tenant_key(tenant)}:subject:{subject}")
        return count

    def purge_expired(self, now: float | None = None) -> int:
        moment = time.time() if now is None else now
        count = 0
        for tenant_hex in self._call(self._redis.smembers, f"{self.prefix}:tenants"):
            tenant = _unhex(tenant_hex.decode())
            for scope_hex in self._call(self._redis.smembers, f"{self._tenant_key(tenant)}:scopes"):
                scope = _unhex(scope_hex.decode())
                doomed = [r for r in self._all_records(tenant, scope) if r.expired(moment)]
                count += self._delete_records(tenant, scope, doomed)
        return count

    def ping(self) -> None:
        self._call(self._redis.ping)

    def close(self) -> None:
        self._redis.close()

    # -- DataKeyStore ---------------------------------------------------------------------------

    @staticmethod
    def _encode_key(key: DataKey) -> str:
        return json.dumps({
            "key_id": key.key_id, "tenant": key.tenant, "purpose": key.purpose,
            "wrapped": base64.b64encode(key.wrapped).decode(), "kek_id": key.kek.key_id,
            "kek_version": key.kek.version, "created": key.created, "active": key.active,
        })  # fmt: skip

    @staticmethod
    def _decode_key(raw: bytes) -> DataKey:
        try:
            data = json.loads(raw)
            purpose = data["purpose"]
            if purpose not in ("data", "index"):
                raise ValueError(purpose)
            return DataKey(data["key_id"], data["tenant"], purpose, base64.b64decode(data["wrapped"]),
                           KeyRef(data["kek_id"], int(data["kek_version"])), float(data["created"]),
                           bool(data["active"]))  # fmt: skip
        except (ValueError, KeyError, TypeError):
            raise IntegrityError("a data key is corrupt in Redis") from None

    def data_keys(self, tenant: str | None = None) -> list[DataKey]:
        if tenant is None:
            tenants = [_unhex(t.decode()) for t in self._call(self._redis.smembers, f"{self.prefix}:tenants")]
        else:
            tenants = [tenant]
        keys: list[DataKey] = []
        for name in tenants:
            keys.extend(self._decode_key(raw) for raw in self._call(self._redis.hvals, f"{self._tenant_key(name)}:dk"))
        return keys

    def add_data_key(self, key: DataKey) -> DataKey:
        base = self._tenant_key(key.tenant)
        self._call(self._redis.sadd, f"{self.prefix}:tenants", _hex(key.tenant))
        stored = self._call(
            self._add_key, keys=[f"{base}:dk", f"{base}:dk:active:{key.purpose}"],
            args=[key.key_id, self._encode_key(key), "1" if key.active else "0"],
        )  # fmt: skip
        return self._decode_key(stored)

    def replace_data_key(self, key: DataKey) -> None:
        base = self._tenant_key(key.tenant)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(f"{base}:dk", key.key_id, self._encode_key(key))
        if key.active:
            pipe.set(f"{base}:dk:active:{key.purpose}", key.key_id)
        self._call(pipe.execute)
        if not key.active:
            # Clear the pointer only if it still points at this key (compare-and-delete).
            pointer = f"{base}:dk:active:{key.purpose}"
            if self._call(self._redis.get, pointer) == key.key_id.encode():
                self._call(self._redis.delete, pointer)
