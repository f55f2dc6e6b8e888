"""Redis vault: for several processes or machines sharing one vault (extra `veil[redis]`).

Keys start with a prefix, then the tenant and the scope, each hex-encoded so that no name can
reach into another's keys: tenant isolation is in the key space itself.

    {prefix}:{tenant}:{scope}:idx           hash    blind index → token (the scope's live mappings)
    {prefix}:{tenant}:{scope}:rec:{token}   hash    entity, blind_index, key_id, ciphertext, subject,
                                                    created, expires, seq
    {prefix}:{tenant}:{scope}:ctr           hash    entity → last token number (kept by erasure)
    {prefix}:{tenant}:{scope}:seq           string  creation sequence of the scope (records' order)
    {prefix}:{tenant}:subject:{subject}     set     "{scope}:{token}" of one data subject's mappings
    {prefix}:expiring                       zset    "{tenant}:{scope}:{token}" by expiry time
    {prefix}:{tenant}:dk                    hash    data key id → data key (JSON, key wrapped)
    {prefix}:{tenant}:dk:active:{purpose}   string  id of the tenant's active key for a purpose
    {prefix}:tenants                        set     tenants that have data keys

**New mappings: reserve, seal, commit.** A value must be sealed with its token in the associated
data, and the token is known only once its number is allocated, so one script cannot do it all
(Redis cannot seal). Two atomic Lua scripts do, with the sealing in between:

1. *reserve* returns the value's token if it has a live one; otherwise it allocates the next
   number of the entity (`HINCRBY`) and writes nothing else;
2. Python makes the token and seals the value under it;
3. *commit* writes the index entry and the sealed record together — unless a live mapping of the
   value was committed meanwhile by another writer, whose token it returns instead (the reserved
   number then stays unused).

A number is used by at most one value (it is allocated once), a value has at most one live token
(commit checks the index inside the script), and a token is returned only after *commit* wrote
its sealed record. A writer killed between the scripts leaves an unused number — a gap, never a
token without its value; no pending marker is needed, since nothing is ever half-written. (The
alternative, reserving the index entry first and filling the record in later, would publish a
token that other writers could return before its value exists.) Both scripts take many values
at once: `get_or_create_many` costs two round trips for a whole text.

**Expiry** is the per-record `expires`, checked on every read, and a global sorted set by expiry
time from which `purge_expired` deletes in batches. Records carry no Redis TTL on purpose: a
record, its index entry, its subject entry and its expiry entry must disappear together (an
erased subject must leave no blind index behind), which one key's TTL cannot do. **Erasure**
(`erase_scope`, `erase_subject`) is one script each, so it is atomic with respect to writers;
counters are kept, so an erased token's number is never reused. Scripts run with EVALSHA and
are loaded again if the server lost them. Scripts build some key names themselves, so the vault
needs a single Redis server (or a primary with replicas), not Redis Cluster.

Durability is Redis's: run it with AOF (`appendonly yes`, `appendfsync everysec` or `always`)
for a vault that outlives a restart of Redis itself.
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
from veil.errors import ConfigError, IntegrityError, VaultError, VaultUnavailable
from veil.vault.base import NewMapping, TokenFactory, VaultRecord

_BATCH = 500
_PURGE_BATCH = 1000

# Helpers shared by the scripts. A record exists exactly as long as its index entry (they are
# written and deleted together), and its `expires` field is '' when it never expires.
_LUA_PRELUDE = """
local function hex(text)
    return (text:gsub('.', function(c) return string.format('%02x', string.byte(c)) end))
end
local function alive(record, now)
    local expires = redis.call('HGET', record, 'expires')
    return expires ~= false and (expires == '' or tonumber(expires) > now)
end
-- Delete one mapping everywhere it is filed; returns 1 if its record existed.
local function drop(prefix, thex, shex, token, blind_index)
    local base = prefix .. ':' .. thex .. ':' .. shex
    local record = base .. ':rec:' .. token
    local fields = redis.call('HMGET', record, 'blind_index', 'subject')
    local index = fields[1] or blind_index
    if index and redis.call('HGET', base .. ':idx', index) == token then
        redis.call('HDEL', base .. ':idx', index)
    end
    if fields[2] and fields[2] ~= '' then
        redis.call('SREM', prefix .. ':' .. thex .. ':subject:' .. hex(fields[2]), shex .. ':' .. token)
    end
    redis.call('ZREM', prefix .. ':expiring', thex .. ':' .. shex .. ':' .. token)
    return redis.call('DEL', record)
end
"""

# KEYS: idx, ctr. ARGV: prefix, tenant hex, scope hex, now, then (blind index, entity) pairs.
# Returns flag, value pairs: 1, token (a live mapping) or 0, the reserved number.
_RESERVE = (
    _LUA_PRELUDE
    + """
local prefix, thex, shex, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local base = prefix .. ':' .. thex .. ':' .. shex
local out = {}
for i = 5, #ARGV, 2 do
    local token = redis.call('HGET', KEYS[1], ARGV[i])
    if token and alive(base .. ':rec:' .. token, now) then
        out[#out + 1] = 1
        out[#out + 1] = token
    else
        if token then
            drop(prefix, thex, shex, token, ARGV[i])  -- expired: the value gets a fresh number
        end
        out[#out + 1] = 0
        out[#out + 1] = redis.call('HINCRBY', KEYS[2], ARGV[i + 1], 1)
    end
end
return out
"""
)

# KEYS: idx, seq. ARGV: prefix, tenant hex, scope hex, now, then per mapping
# (blind index, token, entity, key id, ciphertext, subject, created, expires).
# Returns each mapping's token: the new one, or the one another writer committed first.
_COMMIT = (
    _LUA_PRELUDE
    + """
local prefix, thex, shex, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local base = prefix .. ':' .. thex .. ':' .. shex
local function winner(index)
    local token = redis.call('HGET', KEYS[1], index)
    if token and alive(base .. ':rec:' .. token, now) then
        return token
    end
    return nil
end
-- Check every mapping before writing any: a token already stored (a token factory that is not
-- one-to-one) refuses the whole batch, as a primary key would.
local seen = {}
for i = 5, #ARGV, 8 do
    local token = ARGV[i + 1]
    if not winner(ARGV[i]) then
        if seen[token] or redis.call('EXISTS', base .. ':rec:' .. token) == 1 then
            return redis.error_reply('veil: token collision')
        end
        seen[token] = true
    end
end
local out = {}
for i = 5, #ARGV, 8 do
    local index, token, subject, expires = ARGV[i], ARGV[i + 1], ARGV[i + 5], ARGV[i + 7]
    local existing = winner(index)
    if existing then
        out[#out + 1] = existing
    else
        local stale = redis.call('HGET', KEYS[1], index)
        if stale then
            drop(prefix, thex, shex, stale, index)
        end
        redis.call('HSET', KEYS[1], index, token)
        redis.call('HSET', base .. ':rec:' .. token, 'entity', ARGV[i + 2], 'blind_index', index,
                   'key_id', ARGV[i + 3], 'ciphertext', ARGV[i + 4], 'subject', subject,
                   'created', ARGV[i + 6], 'expires', expires, 'seq', redis.call('INCR', KEYS[2]))
        if subject ~= '' then
            redis.call('SADD', prefix .. ':' .. thex .. ':subject:' .. hex(subject), shex .. ':' .. token)
        end
        if expires ~= '' then
            redis.call('ZADD', prefix .. ':expiring', expires, thex .. ':' .. shex .. ':' .. token)
        end
        out[#out + 1] = token
    end
end
return out
"""
)

# KEYS: idx. ARGV: blind index, now, record key prefix. The live token of a value, or nil.
_FIND = (
    _LUA_PRELUDE
    + """
local token = redis.call('HGET', KEYS[1], ARGV[1])
if token and alive(ARGV[3] .. token, tonumber(ARGV[2])) then
    return token
end
return nil
"""
)

# KEYS: idx. ARGV: prefix, tenant hex, scope hex. Counters and sequence are kept.
_ERASE_SCOPE = (
    _LUA_PRELUDE
    + """
local entries = redis.call('HGETALL', KEYS[1])
local count = 0
for i = 1, #entries, 2 do
    count = count + drop(ARGV[1], ARGV[2], ARGV[3], entries[i + 1], entries[i])
end
redis.call('DEL', KEYS[1])
return count
"""
)

# KEYS: subject set. ARGV: prefix, tenant hex.
_ERASE_SUBJECT = (
    _LUA_PRELUDE
    + """
local count = 0
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    local shex, token = string.match(member, '^([^:]*):(.*)$')
    count = count + drop(ARGV[1], ARGV[2], shex, token, nil)
end
redis.call('DEL', KEYS[1])
return count
"""
)

# KEYS: expiring. ARGV: prefix, now, batch size. Returns {records deleted, entries read}.
_PURGE = (
    _LUA_PRELUDE
    + """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local count = 0
for _, member in ipairs(members) do
    local thex, shex, token = string.match(member, '^([^:]*):([^:]*):(.*)$')
    count = count + drop(ARGV[1], thex, shex, token, nil)
    redis.call('ZREM', KEYS[1], member)
end
return {count, #members}
"""
)

# KEYS: data keys hash, active pointer, tenants set. ARGV: key id, JSON, active flag, tenant hex.
_ADD_DATA_KEY = """
local active = redis.call('GET', KEYS[2])
if active then
    local stored = redis.call('HGET', KEYS[1], active)
    if stored then
        return stored
    end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == '1' then
    redis.call('SET', KEYS[2], ARGV[1])
end
redis.call('SADD', KEYS[3], ARGV[4])
return ARGV[2]
"""

# KEYS: data keys hash, active pointer. ARGV: key id, JSON, active flag.
_REPLACE_DATA_KEY = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
    return 0
end
local active = redis.call('GET', KEYS[2])
if ARGV[3] == '1' then
    if active and active ~= ARGV[1] then
        return redis.error_reply('veil: another data key is active')
    end
    redis.call('SET', KEYS[2], ARGV[1])
elseif active == ARGV[1] then
    redis.call('DEL', KEYS[2])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def _hex(text: str) -> str:
    return text.encode("utf-8").hex()


def _unhex(text: str) -> str:
    return bytes.fromhex(text).decode("utf-8")


def _now() -> str:
    return repr(time.time())


class RedisVault:
    """A Vault (and DataKeyStore) in Redis; thread-safe, and shareable by any number of processes."""

    name = "redis"

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "veil", timeout: float = 5.0) -> None:
        try:
            import redis  # noqa: PLC0415
        except ImportError as exc:
            raise ConfigError("the Redis vault needs redis-py: pip install 'veil[redis]'") from exc
        if not prefix or ":" in prefix:
            raise ConfigError("the Redis key prefix must be non-empty and contain no ':'")
        errors = redis.exceptions
        # Down, unreachable, read-only (a replica after failover), out of memory or not allowed:
        # nothing was written, and retrying later (or elsewhere) is the answer.
        self._unavailable = (errors.ConnectionError, errors.TimeoutError, errors.ReadOnlyError,
                             errors.MasterDownError, errors.OutOfMemoryError, errors.NoPermissionError)  # fmt: skip
        self._response_error = errors.ResponseError
        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        script = self._redis.register_script
        self._reserve, self._commit, self._find = script(_RESERVE), script(_COMMIT), script(_FIND)
        self._erase_scope, self._erase_subject, self._purge = (script(_ERASE_SCOPE), script(_ERASE_SUBJECT),
                                                               script(_PURGE))  # fmt: skip
        self._add_key, self._replace_key = script(_ADD_DATA_KEY), script(_REPLACE_DATA_KEY)
        self.ping()

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except self._unavailable as exc:
            raise VaultUnavailable(f"the Redis vault is unreachable ({type(exc).__name__})") from None

    def _tenant_key(self, tenant: str) -> str:
        return f"{self.prefix}:{_hex(tenant)}"

    def _scope_key(self, tenant: str, scope: str) -> str:
        return f"{self.prefix}:{_hex(tenant)}:{_hex(scope)}"

    # -- Vault ----------------------------------------------------------------------------------

    @property
    def keys(self) -> RedisVault:
        return self

    def get_or_create(self, tenant: str, scope: str, mapping: NewMapping, make_token: TokenFactory) -> tuple[str, bool]:
        return self.get_or_create_many(tenant, scope, [mapping], make_token)[0]

    def get_or_create_many(
        self, tenant: str, scope: str, mappings: Sequence[NewMapping], make_token: TokenFactory
    ) -> list[tuple[str, bool]]:
        """`get_or_create` for several values: two round trips per batch (see the module docstring)."""
        base = self._scope_key(tenant, scope)
        names = [self.prefix, _hex(tenant), _hex(scope)]
        unique = list({m.blind_index: m for m in mappings}.values())
        found: dict[str, tuple[str, bool]] = {}
        for start in range(0, len(unique), _BATCH):
            chunk = unique[start : start + _BATCH]
            reserved = self._call(
                self._reserve, keys=[f"{base}:idx", f"{base}:ctr"],
                args=[*names, _now(), *(part for m in chunk for part in (m.blind_index, m.entity))],
            )  # fmt: skip
            new: list[tuple[NewMapping, str, Sealed]] = []
            for mapping, flag, value in zip(chunk, reserved[::2], reserved[1::2], strict=True):
                if int(flag):
                    found[mapping.blind_index] = (value.decode(), False)
                else:
                    token = make_token(mapping.entity, int(value))
                    new.append((mapping, token, mapping.seal(token)))
            if not new:
                continue
            created = repr(time.time())
            args: list[str | bytes] = [*names, _now()]
            for mapping, token, sealed in new:
                expires = "" if mapping.expires is None else repr(mapping.expires)
                args += [mapping.blind_index, token, mapping.entity, sealed.key_id, sealed.ciphertext,
                         mapping.subject or "", created, expires]  # fmt: skip
            try:
                committed = self._call(self._commit, keys=[f"{base}:idx", f"{base}:seq"], args=args)
            except self._response_error as exc:
                if "veil: token collision" not in str(exc):
                    raise
                raise IntegrityError(
                    "a new token is already stored for another value: the token factory is not one-to-one, "
                    "or the vault's counters are behind its records"
                ) from None
            for (mapping, token, _), winner in zip(new, committed, strict=True):
                found[mapping.blind_index] = (winner.decode(), winner.decode() == token)
        return [found[m.blind_index] for m in mappings]

    def _record(self, tenant: str, scope: str, token: str, fields: dict[bytes, bytes]) -> tuple[int, VaultRecord]:
        try:
            expires = fields[b"expires"].decode()
            record = VaultRecord(
                tenant=tenant, scope=scope, token=token, entity=fields[b"entity"].decode(),
                blind_index=fields[b"blind_index"].decode(),
                sealed=Sealed(fields[b"key_id"].decode(), bytes(fields[b"ciphertext"])),
                subject=fields[b"subject"].decode() or None, created=float(fields[b"created"]),
                expires=float(expires) if expires else None,
            )  # fmt: skip
            return int(fields[b"seq"]), record
        except (KeyError, ValueError, UnicodeDecodeError):
            raise IntegrityError(f"vault record {token} is corrupt in Redis") from None

    def lookup(self, tenant: str, scope: str, token: str) -> VaultRecord | None:
        fields = self._call(self._redis.hgetall, f"{self._scope_key(tenant, scope)}:rec:{token}")
        if not fields:
            return None
        _, record = self._record(tenant, scope, token, fields)
        return None if record.expired() else record

    def find(self, tenant: str, scope: str, blind_index: str) -> str | None:
        base = self._scope_key(tenant, scope)
        token = self._call(self._find, keys=[f"{base}:idx"], args=[blind_index, _now(), f"{base}:rec:"])
        return None if token is None else str(token.decode())

    def records(self, tenant: str, scope: str) -> list[VaultRecord]:
        base = self._scope_key(tenant, scope)
        tokens = [t.decode() for t in self._call(self._redis.hvals, f"{base}:idx")]
        pipe = self._redis.pipeline(transaction=False)
        for token in tokens:
            pipe.hgetall(f"{base}:rec:{token}")
        rows = self._call(pipe.execute)
        found = [self._record(tenant, scope, t, f) for t, f in zip(tokens, rows, strict=True) if f]
        now = time.time()
        return [record for _, record in sorted(found, key=lambda pair: pair[0]) if not record.expired(now)]

    def erase_scope(self, tenant: str, scope: str) -> int:
        names = [self.prefix, _hex(tenant), _hex(scope)]
        return int(self._call(self._erase_scope, keys=[f"{self._scope_key(tenant, scope)}:idx"], args=names))

    def erase_subject(self, tenant: str, subject: str) -> int:
        key = f"{self._tenant_key(tenant)}:subject:{_hex(subject)}"
        return int(self._call(self._erase_subject, keys=[key], args=[self.prefix, _hex(tenant)]))

    def purge_expired(self, now: float | None = None) -> int:
        moment = repr(time.time() if now is None else now)
        total = 0
        while True:  # in batches, so that no script holds the server for long
            deleted, read = self._call(
                self._purge, keys=[f"{self.prefix}:expiring"], args=[self.prefix, moment, _PURGE_BATCH]
            )
            total += int(deleted)
            if int(read) < _PURGE_BATCH:
                return total

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
        stored = self._call(
            self._add_key, keys=[f"{base}:dk", f"{base}:dk:active:{key.purpose}", f"{self.prefix}:tenants"],
            args=[key.key_id, self._encode_key(key), "1" if key.active else "0", _hex(key.tenant)],
        )  # fmt: skip
        return self._decode_key(stored)

    def replace_data_key(self, key: DataKey) -> None:
        base = self._tenant_key(key.tenant)
        try:
            self._call(
                self._replace_key, keys=[f"{base}:dk", f"{base}:dk:active:{key.purpose}"],
                args=[key.key_id, self._encode_key(key), "1" if key.active else "0"],
            )  # fmt: skip
        except self._response_error as exc:
            if "veil: another data key is active" not in str(exc):
                raise
            raise VaultError(
                f"data key {key.key_id} cannot be made active: the tenant already has an active {key.purpose} key"
            ) from None
