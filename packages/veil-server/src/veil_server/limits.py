"""Per-key rate limits and monthly budgets: admit a request, or refuse it with 429 and `Retry-After`.

Each API key may carry `limits` (`requests_per_minute`, `requests_per_day`, `monthly_budget` in
US dollars). Before a request goes further, the gateway asks its `Limiter` to admit it; after it
has been answered, the request's cost (the upstream's reported tokens × the model's `price`) is
charged to the key's month.

Windows, chosen so that "exact" has one meaning that can be tested:

- **requests per minute: a sliding log.** The admission times of the last 60 seconds are kept;
  a request is admitted only if fewer than N were admitted in the 60 seconds before it. So no
  interval of 60 seconds ever holds more than N admitted requests, wherever it starts (a fixed
  "calendar minute" counter lets 2N through around a minute boundary). Memory: N timestamps a key.
- **requests per day: the calendar day, UTC.** A counter per key and day, reset at 00:00 UTC
  (a quota, like the budget; a sliding day would keep a timestamp per request for 24 hours).
- **budget: the calendar month, UTC.** Admission refuses once the month's spend has *reached*
  the budget. Spend is known only when a request ends, so requests already in flight when the
  budget is reached still finish and are charged: the overshoot is at most their cost.

Refused requests use no quota. A request is admitted only if every limit admits it, and then
counts against all of them, atomically (a request refused by the daily limit does not use a
slot of the minute).

Two implementations:

- `MemoryLimiter` (the default): one process. A lock around pure-Python bookkeeping (no await
  inside), so it is exact under any mix of asyncio tasks and threads.
- `RedisLimiter` (`server.redis_url`): every replica shares the counters. Admission and charging
  are Lua scripts, which Redis runs atomically, and which read the time from Redis itself
  (`TIME`), so replicas with skewed clocks still share one window. Redis unreachable is
  `LimitsUnavailable`: the request is refused with 503, never admitted unlimited.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from veil_server.errors import ApiError
from veil_server.settings import KeyLimits

Refusal = Literal["requests_per_minute", "requests_per_day", "monthly_budget"]
NANO = 1_000_000_000
"""Spend is counted in nano-dollars (integers): sums are exact, and fractions of a cent add up."""

MINUTE = 60.0
DAY = 86_400.0


class LimitsUnavailable(Exception):
    """The limits backend (Redis) cannot be reached: requests are refused (503), never admitted unlimited."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What the limiter said about one request.

    `limit`, `remaining` and `reset` describe the request limit closest to refusing (for the
    `x-ratelimit-*-requests` headers); None when the key has no request limit."""

    admitted: bool
    refusal: Refusal | None = None
    limit: int | None = None
    remaining: int | None = None
    reset: float = 0.0
    """Seconds until a slot of that limit frees up (a refusal's Retry-After)."""

    def headers(self) -> dict[str, str]:
        if self.limit is None or self.refusal == "monthly_budget":
            return {}
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(max(0, self.remaining or 0)),
            "x-ratelimit-reset-requests": duration(self.reset),
        }

    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset))


def duration(seconds: float) -> str:
    """OpenAI's duration format for `x-ratelimit-reset-*`: 20ms, 1.5s, 6m0s, 2h3m4s."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes}m{secs}s" if hours else f"{minutes}m{secs}s"


def refusal_error(decision: Decision, limits: KeyLimits) -> ApiError:
    """The 429 of a refused request, worded and typed like OpenAI's."""
    headers = {**decision.headers(), "Retry-After": str(decision.retry_after())}
    if decision.refusal == "monthly_budget":
        return ApiError(
            429,
            f"This API key has reached its monthly budget (${limits.monthly_budget:g}, calendar month UTC); "
            "it resets at the start of next month. Ask an administrator to raise it.",
            code="budget_exceeded",
            type="insufficient_quota",
            headers=headers,
        )
    per = "minute (RPM)" if decision.refusal == "requests_per_minute" else "day (RPD, calendar day UTC)"
    return ApiError(
        429,
        f"Rate limit reached for requests per {per}: Limit {decision.limit}, Used {decision.limit}, "
        f"Requested 1. Please try again in {duration(decision.reset)}.",
        code="rate_limit_exceeded",
        type="requests",
        headers=headers,
    )


def cost_nano(prompt_tokens: int, completion_tokens: int, input_price: float, output_price: float) -> int:
    """Nano-dollars for a request, prices in US dollars per million tokens."""
    return round((prompt_tokens * input_price + completion_tokens * output_price) * 1000)


def month_of(now: float) -> int:
    """The calendar month (UTC) of a time, as YYYYMM."""
    moment = datetime.fromtimestamp(now, UTC)
    return moment.year * 100 + moment.month


def seconds_to_next_month(now: float) -> float:
    moment = datetime.fromtimestamp(now, UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0)) - now


def bucket_of(tenant: str, key_id: str) -> str:
    """A fixed-length, non-secret name for a key's counters (key ids may hold any character)."""
    return hashlib.sha256(f"{tenant}\x00{key_id}".encode()).hexdigest()[:24]


class Limiter(Protocol):
    async def admit(self, bucket: str, limits: KeyLimits) -> Decision:
        """Admit one request of the key `bucket`, or say which limit refuses it (atomically)."""
        ...

    async def charge(self, bucket: str, nano_usd: int) -> None:
        """Add a finished request's cost to the key's spend this month."""
        ...

    async def spent(self, bucket: str) -> int:
        """The key's spend this month, in nano-dollars."""
        ...

    async def ping(self) -> None:
        """Raise LimitsUnavailable if limits cannot be checked now (readiness)."""
        ...

    async def aclose(self) -> None: ...


def _closest(candidates: list[tuple[int, int, float]]) -> tuple[int | None, int | None, float]:
    """Of (limit, remaining, reset) per request limit, the one with the fewest remaining."""
    if not candidates:
        return None, None, 0.0
    return min(candidates, key=lambda c: (c[1], -c[2]))


class MemoryLimiter:
    """Limits of one process (see the module docstring). `clock` is for tests (default time.time).

    `seed` gives a key's spend this month when the process first sees it (the usage store's sum),
    so that a restart does not reset budgets."""

    def __init__(self, *, clock: Callable[[], float] = time.time, seed: Callable[[str], int] | None = None) -> None:
        self._clock = clock
        self._seed = seed
        self._lock = threading.Lock()
        self._minute: dict[str, deque[float]] = {}
        self._day: dict[str, tuple[int, int]] = {}
        self._spend: dict[str, tuple[int, int]] = {}

    def _spend_now(self, bucket: str, now: float) -> int:
        month = month_of(now)
        known = self._spend.get(bucket)
        if known is not None and known[0] == month:
            return known[1]
        return -1

    async def admit(self, bucket: str, limits: KeyLimits) -> Decision:
        if limits.monthly_budget is not None and self._spend_now(bucket, self._clock()) < 0:
            await self._load_spend(bucket)
        with self._lock:
            return self._admit(bucket, limits, self._clock())

    def _admit(self, bucket: str, limits: KeyLimits, now: float) -> Decision:
        candidates: list[tuple[int, int, float]] = []
        log: deque[float] | None = None
        budget = limits.monthly_budget
        if budget is not None and self._spend_now(bucket, now) >= round(budget * NANO):
            return Decision(False, "monthly_budget", reset=seconds_to_next_month(now))
        if limits.requests_per_minute is not None:
            log = self._minute.setdefault(bucket, deque())
            while log and log[0] <= now - MINUTE:
                log.popleft()
            used = len(log)
            reset = log[0] + MINUTE - now if log else MINUTE
            if used >= limits.requests_per_minute:
                return Decision(False, "requests_per_minute", limits.requests_per_minute, 0, reset)
            candidates.append((limits.requests_per_minute, limits.requests_per_minute - used - 1, reset))
        day = int(now // DAY)
        if limits.requests_per_day is not None:
            known_day, count = self._day.get(bucket, (day, 0))
            count = count if known_day == day else 0
            reset = (day + 1) * DAY - now
            if count >= limits.requests_per_day:
                return Decision(False, "requests_per_day", limits.requests_per_day, 0, reset)
            self._day[bucket] = (day, count + 1)
            candidates.append((limits.requests_per_day, limits.requests_per_day - count - 1, reset))
        if log is not None:
            log.append(now)
        limit, remaining, reset = _closest(candidates)
        return Decision(True, None, limit, remaining, reset)

    async def _load_spend(self, bucket: str) -> None:
        now = self._clock()
        spent = 0
        if self._seed is not None:
            seed = self._seed
            try:
                spent = await asyncio.get_running_loop().run_in_executor(None, seed, bucket)
            except Exception as exc:  # the usage table: without it, the month's spend is unknown
                raise LimitsUnavailable(f"the budget's spend cannot be read ({type(exc).__name__})") from None
        with self._lock:
            if self._spend_now(bucket, now) < 0:
                self._spend[bucket] = (month_of(now), spent)

    async def charge(self, bucket: str, nano_usd: int) -> None:
        if nano_usd <= 0:
            return
        now = self._clock()
        with self._lock:
            month = month_of(now)
            known_month, spent = self._spend.get(bucket, (month, 0))
            self._spend[bucket] = (month, (spent if known_month == month else 0) + nano_usd)

    async def spent(self, bucket: str) -> int:
        return max(0, self._spend_now(bucket, self._clock()))

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


# KEYS: the minute log (sorted set), the day counter (hash: day, count), the spend (hash: month, nano).
# ARGV: per_minute, per_day (0: none), budget in nano-dollars (-1: none), a unique member for the log.
# Returns {admitted, refusal, limit, remaining, reset_ms} (limit 0: no request limit).
MONTH_OF_LUA = """
local function month_of(seconds)
  -- days since 1970-01-01 to a civil (proleptic Gregorian) year and month: H. Hinnant's algorithm
  local z = math.floor(seconds / 86400) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y * 100 + m
end
"""

# Every script reads the time from Redis: one clock for all replicas.
_CIVIL = (
    MONTH_OF_LUA
    + """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local month = month_of(tonumber(t[1]))
"""
)

_ADMIT = (
    _CIVIL
    + """
local per_minute = tonumber(ARGV[1])
local per_day = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
if budget >= 0 then
  local spend = redis.call('HMGET', KEYS[3], 'month', 'nano')
  local spent = 0
  if tonumber(spend[1]) == month then spent = tonumber(spend[2]) end
  if spent >= budget then
    return {0, 'monthly_budget', 0, 0, 0, month}
  end
end
local best_limit, best_remaining, best_reset = 0, 0, 0
local function consider(limit, remaining, reset)
  if best_limit == 0 or remaining < best_remaining or (remaining == best_remaining and reset > best_reset) then
    best_limit, best_remaining, best_reset = limit, remaining, reset
  end
end
if per_minute > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - 60000)
  local used = redis.call('ZCARD', KEYS[1])
  local reset = 60000
  if used > 0 then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    reset = tonumber(oldest[2]) + 60000 - now_ms
  end
  if used >= per_minute then
    return {0, 'requests_per_minute', per_minute, 0, reset, month}
  end
  consider(per_minute, per_minute - used - 1, reset)
end
local day = math.floor(now_ms / 86400000)
local day_reset = (day + 1) * 86400000 - now_ms
local day_count = 0
if per_day > 0 then
  local counter = redis.call('HMGET', KEYS[2], 'day', 'count')
  if tonumber(counter[1]) == day then day_count = tonumber(counter[2]) end
  if day_count >= per_day then
    return {0, 'requests_per_day', per_day, 0, day_reset, month}
  end
  consider(per_day, per_day - day_count - 1, day_reset)
end
if per_minute > 0 then
  redis.call('ZADD', KEYS[1], now_ms, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], 61000)
end
if per_day > 0 then
  redis.call('HSET', KEYS[2], 'day', day, 'count', day_count + 1)
  redis.call('PEXPIRE', KEYS[2], day_reset + 60000)
end
return {1, '', best_limit, best_remaining, best_reset, month}
"""
)

# KEYS: the spend hash. ARGV: nano-dollars to add. Returns the month's spend after the charge.
_CHARGE = (
    _CIVIL
    + """
local spend = redis.call('HMGET', KEYS[1], 'month', 'nano')
local total = tonumber(ARGV[1])
if tonumber(spend[1]) == month then total = total + tonumber(spend[2]) end
redis.call('HSET', KEYS[1], 'month', month, 'nano', total)
redis.call('EXPIRE', KEYS[1], 40 * 86400)
return total
"""
)

_SPENT = (
    _CIVIL
    + """
local spend = redis.call('HMGET', KEYS[1], 'month', 'nano')
if tonumber(spend[1]) == month then return tonumber(spend[2]) end
return 0
"""
)


class RedisLimiter:
    """Limits shared by every replica through Redis (see the module docstring)."""

    def __init__(
        self, url: str, *, prefix: str = "veil:limits", timeout: float = 2.0, max_connections: int = 32
    ) -> None:
        try:
            import redis.asyncio  # noqa: PLC0415
        except ImportError as exc:
            raise ValueError("server.redis_url needs the redis client: pip install 'veil[redis]'") from exc
        self._errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)
        self.prefix = prefix
        from redis.asyncio.retry import Retry  # noqa: PLC0415
        from redis.backoff import NoBackoff  # noqa: PLC0415

        # A blocking pool: a burst of requests waits for a connection (up to `timeout`) instead of failing.
        # A connection broken since the last use (Redis restarted) is retried once on a fresh one:
        # without it, each pooled connection refused one request after a restart. If the script had
        # run before the break, it runs twice: one request counted twice, never an extra admission.
        retry = Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,))
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, socket_connect_timeout=timeout,
            socket_timeout=timeout, health_check_interval=30, retry=retry,
        )  # fmt: skip
        self._pool: Any = pool
        self._client: Any = redis.asyncio.Redis(connection_pool=pool)
        self._admit = self._client.register_script(_ADMIT)
        self._charge = self._client.register_script(_CHARGE)
        self._spent = self._client.register_script(_SPENT)

    def _keys(self, bucket: str) -> list[str]:
        # One hash tag per key: the three keys live in one cluster slot, as a multi-key script needs.
        base = f"{self.prefix}:{{{bucket}}}"
        return [f"{base}:minute", f"{base}:day", f"{base}:spend"]

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except self._errors as exc:
            raise LimitsUnavailable(f"Redis (limits) unreachable ({type(exc).__name__})") from None

    async def admit(self, bucket: str, limits: KeyLimits) -> Decision:
        budget = -1 if limits.monthly_budget is None else round(limits.monthly_budget * NANO)
        args = [limits.requests_per_minute or 0, limits.requests_per_day or 0, budget, uuid.uuid4().hex]
        admitted, refusal, limit, remaining, reset_ms, _month = await self._call(self._admit, self._keys(bucket), args)
        refused = refusal.decode() if isinstance(refusal, bytes) else str(refusal)
        if refused == "monthly_budget":
            return Decision(False, "monthly_budget", reset=seconds_to_next_month(time.time()))
        if not admitted:
            return Decision(False, refused, int(limit), 0, int(reset_ms) / 1000)  # type: ignore[arg-type]
        if not limit:
            return Decision(True)
        return Decision(True, None, int(limit), int(remaining), int(reset_ms) / 1000)

    async def charge(self, bucket: str, nano_usd: int) -> None:
        if nano_usd > 0:
            await self._call(self._charge, self._keys(bucket)[2:], [nano_usd])

    async def spent(self, bucket: str) -> int:
        return int(await self._call(self._spent, self._keys(bucket)[2:], []))

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except self._errors as exc:
            raise LimitsUnavailable(f"Redis (limits) unreachable ({type(exc).__name__})") from None

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._pool.disconnect()
