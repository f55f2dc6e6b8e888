"""Admission and accounting around each request: one call before, one after.

    ticket = await gateway.meter.admit(request, caller, "/v1/chat/completions", model=name, body=body)
    ...                                   # anonymize, call the model
    await ticket.done(answer)             # unary: the upstream's answer (its `usage`), or None
    relay(..., ticket=ticket)             # streams: the relay reports usage and the end of the stream

`admit` asks the limiter (429 `rate_limit_exceeded` / `budget_exceeded` with `Retry-After`,
`quota.exceeded` event) and refuses with 503 while usage cannot be recorded. `done` prices the
request's tokens with the model's `price`, queues the usage row and the budget charge, emits
`completion.done`, and returns once the row is committed: the answer (a unary response, a
stream's `data: [DONE]`) leaves only after its row is stored, so a replica that crashes right
after answering has lost no row of a request its client saw complete. Rows are written by a
writer task as a group commit: one transaction holds every row queued while the previous one
was being written (one row when the gateway is idle, many under load; rows are unique by
request id). If the state database fails, waiting answers go out anyway (after at most
COMMIT_WAIT seconds), their rows stay queued, new requests are refused (503
`state_unavailable`) until a write succeeds, and nothing is lost short of the process dying
while the database is down. `GET /v1/usage` and shutdown flush the queue first.

Every answer carries `x-request-id` and, for keys with request limits, OpenAI's
`x-ratelimit-{limit,remaining,reset}-requests` headers (set by the guard middleware from
`scope["veil.headers"]`).

Streams: the upstream is asked for usage (`stream_options.include_usage`, unless the provider
says `stream_usage = false`); the client sees the usage chunk only if it asked for it. A stream
left by the client is recorded as `cancelled` with the usage the upstream reported, or else an
estimate (4 characters a token: the request's size, and the text streamed so far).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import anyio.to_thread
from starlette.requests import Request

from veil_server.auth import Principal
from veil_server.errors import ApiError
from veil_server.events import Event, EventSink
from veil_server.limits import NANO, Decision, Limiter, LimitsUnavailable, bucket_of, cost_nano, refusal_error
from veil_server.metrics import Metrics
from veil_server.settings import ModelSettings, Settings
from veil_server.usage import Outcome, UsageRecord, UsageStore

log = logging.getLogger("veil_server")

HEADERS_SCOPE_KEY = "veil.headers"
FLUSH_SECONDS = 0.05
"""The writer's first delay before it tries again after a failed write (doubling, up to 5 s)."""
COMMIT_WAIT = 5.0
"""Seconds an answer waits at most for its usage row's commit (a slow or failing state database:
the answer goes out, the row stays queued)."""
_CHARS_PER_TOKEN = 4


def _tokens(usage: Any) -> tuple[int, int] | None:
    if not isinstance(usage, Mapping):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    prompt = prompt if isinstance(prompt, int) and prompt >= 0 else 0
    completion = completion if isinstance(completion, int) and completion >= 0 else 0
    return prompt, completion


class Meter:
    """The gateway's admission and accounting (one per app)."""

    def __init__(
        self,
        settings: Settings,
        limiter: Limiter,
        store: UsageStore,
        events: Callable[[], EventSink],
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.limiter = limiter
        self.store = store
        self.events = events
        self.metrics = metrics
        self._announced: dict[tuple[str, str], float] = {}
        # Usage rows and budget charges wait here until the writer stores them (in batches).
        self._rows: list[UsageRecord] = []
        self._written: asyncio.Event | None = None
        """Set once the write of the queued rows has been tried (stored, or queued again after a failure)."""
        self._charges: dict[str, int] = {}
        self._healthy = True
        self._writer: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._flushing: asyncio.Lock | None = None

    # -- before ------------------------------------------------------------------------------

    async def admit(
        self,
        request: Request,
        caller: Principal,
        endpoint: str,
        *,
        model: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> Ticket:
        """Admit the request or raise ApiError (429 over a limit, 503 when limits or usage cannot be kept)."""
        if not self._healthy:
            await self.flush()  # the state database failed last time: store what waits, or refuse
        bucket = bucket_of(caller.tenant, caller.key_id)
        limits = caller.limits
        decision = Decision(True)
        if (
            limits.requests_per_minute is not None
            or limits.requests_per_day is not None
            or limits.monthly_budget is not None
        ):
            try:
                decision = await self.limiter.admit(bucket, limits)
            except LimitsUnavailable as exc:
                raise ApiError(
                    503, f"rate limits cannot be checked ({exc}); the request was refused and nothing was sent "
                    "to the model. Retry later.", code="limits_unavailable", headers={"Retry-After": "1"},
                ) from None  # fmt: skip
        if not decision.admitted:
            self._refused(caller, endpoint, decision)
            raise refusal_error(decision, limits)
        ticket = Ticket(self, caller=caller, bucket=bucket, endpoint=endpoint, model=model,
                        model_settings=self.settings.models.get(model or ""))  # fmt: skip
        request.scope[HEADERS_SCOPE_KEY] = {"x-request-id": ticket.id, **decision.headers()}
        ticket.size = _content_length(request)
        if body is not None and body.get("stream"):
            ticket.client_wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            if ticket.model_settings is not None and self._stream_usage(ticket.model_settings):
                body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return ticket

    def _stream_usage(self, model: ModelSettings) -> bool:
        provider = self.settings.providers.get(model.provider)
        return provider is None or provider.stream_usage

    def _refused(self, caller: Principal, endpoint: str, decision: Decision) -> None:
        refusal = decision.refusal or "requests_per_minute"
        self.metrics.limited.labels(refusal).inc()
        now = time.time()
        # One quota.exceeded per key, limit and window (per replica), not one per refused request.
        key = (bucket_of(caller.tenant, caller.key_id), refusal)
        if self._announced.get(key, 0.0) > now:
            return
        self._announced[key] = now + decision.reset
        limit_value: float | None = getattr(caller.limits, refusal)
        self.events().emit(Event("quota.exceeded", caller.tenant, {
            "key_id": caller.key_id, "limit": refusal, "limit_value": limit_value, "endpoint": endpoint,
            "retry_after": decision.retry_after(),
        }))  # fmt: skip

    # -- after -------------------------------------------------------------------------------

    async def record(self, ticket: Ticket, prompt: int, completion: int, outcome: Outcome) -> None:
        """Queue the usage row, charge the key's budget (at once: the key's next request must see it),
        emit completion.done; return once the row is committed (or COMMIT_WAIT has passed)."""
        model = ticket.model_settings
        price = model.price if model is not None else None
        cost = cost_nano(prompt, completion, price.input, price.output) if price is not None else 0
        self._rows.append(UsageRecord(
            request_id=ticket.id, tenant=ticket.caller.tenant, key_id=ticket.caller.key_id, bucket=ticket.bucket,
            model=ticket.model or "", endpoint=ticket.endpoint, prompt_tokens=prompt, completion_tokens=completion,
            cost_nano=cost, outcome=outcome, created=time.time(),
        ))  # fmt: skip
        written = self._start_writer()
        if cost > 0 and ticket.caller.limits.monthly_budget is not None:
            try:
                await self.limiter.charge(ticket.bucket, cost)
            except LimitsUnavailable:
                self.metrics.usage_errors.labels("limits").inc()
                self._charges[ticket.bucket] = self._charges.get(ticket.bucket, 0) + cost  # retried by the writer
        if ticket.model:
            self.events().emit(Event("completion.done", ticket.caller.tenant, {
                "request_id": ticket.id, "key_id": ticket.caller.key_id, "model": ticket.model,
                "endpoint": ticket.endpoint, "outcome": outcome, "prompt_tokens": prompt,
                "completion_tokens": completion, "total_tokens": prompt + completion, "cost_usd": cost / NANO,
            }))  # fmt: skip
        with contextlib.suppress(TimeoutError):  # asyncio.timeout: see WebhookDispatcher._run
            async with asyncio.timeout(COMMIT_WAIT):
                await written.wait()

    # -- the writer ----------------------------------------------------------------------------

    def _start_writer(self) -> asyncio.Event:
        """Wake the writer; returns the event set once the rows queued so far have been written."""
        if self._wake is None or self._written is None:
            self._wake, self._flushing, self._written = asyncio.Event(), asyncio.Lock(), asyncio.Event()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_forever())
        self._wake.set()
        return self._written

    async def _write_forever(self) -> None:
        """Group commit: write what is queued at once; rows queued meanwhile go in the next transaction."""
        assert self._wake is not None
        backoff = 0.0
        while True:
            await self._wake.wait()
            self._wake.clear()
            if backoff:
                await asyncio.sleep(backoff)
            try:
                await self.flush()
                backoff = 0.0
            except ApiError:
                self._wake.set()  # try again, less often, until the database is back
                backoff = min(max(backoff * 2, FLUSH_SECONDS), 5.0)

    async def flush(self) -> None:
        """Store every queued row and charge (raises ApiError 503 if the state database cannot take them:
        they stay queued, and admissions are refused until a flush succeeds)."""
        if self._flushing is None:
            return
        async with self._flushing:
            await self._charge_budgets()
            rows, self._rows = self._rows, []
            written, self._written = self._written, asyncio.Event()
            try:
                await self._store(rows)
            finally:
                if written is not None:
                    written.set()

    async def _store(self, rows: list[UsageRecord]) -> None:
        if rows:
            try:
                await anyio.to_thread.run_sync(self.store.record, rows)
            except Exception as exc:
                self._rows[:0] = rows
                if self._healthy:
                    self.metrics.usage_errors.labels("state").inc()
                    log.error("%d usage row(s) not stored yet (%s): refusing requests until the state database "
                              "is back", len(rows), type(exc).__name__)  # fmt: skip
                self._healthy = False
                raise ApiError(
                    503, f"usage cannot be recorded: the state database is unavailable ({type(exc).__name__}); "
                    "the request was refused and nothing was sent to the model. Retry later.",
                    code="state_unavailable", headers={"Retry-After": "1"},
                ) from None  # fmt: skip
            if not self._healthy:
                log.info("the state database is back: usage stored, requests admitted again")
            self._healthy = True

    async def _charge_budgets(self) -> None:
        charges, self._charges = self._charges, {}
        for bucket, nano in charges.items():
            try:
                await self.limiter.charge(bucket, nano)
            except LimitsUnavailable:
                self.metrics.usage_errors.labels("limits").inc()
                self._charges[bucket] = self._charges.get(bucket, 0) + nano  # kept for the next flush

    async def aclose(self) -> None:
        """Store what is queued (at shutdown), then stop the writer."""
        try:
            await self.flush()
        except ApiError:
            log.error("%d usage row(s) lost at shutdown: the state database is unavailable", len(self._rows))
        if self._writer is not None:
            self._writer.cancel()


def _content_length(request: Request) -> int:
    try:
        return int(request.headers.get("content-length") or 0)
    except ValueError:
        return 0


class Ticket:
    """One admitted request, until it is recorded (once)."""

    __slots__ = ("_recorded", "bucket", "caller", "client_wants_usage", "endpoint", "id", "meter", "model",
                 "model_settings", "size", "streamed_chars", "usage")  # fmt: skip

    def __init__(
        self,
        meter: Meter,
        *,
        caller: Principal,
        bucket: str,
        endpoint: str,
        model: str | None,
        model_settings: ModelSettings | None,
    ) -> None:
        self.meter = meter
        self.caller = caller
        self.bucket = bucket
        self.endpoint = endpoint
        self.model = model
        self.model_settings = model_settings
        self.id = f"req_{uuid.uuid4().hex}"
        self.size = 0
        self.client_wants_usage = False
        self.streamed_chars = 0
        self.usage: tuple[int, int] | None = None
        self._recorded = False

    async def done(self, answer: Mapping[str, Any] | None) -> None:
        """The request was answered: record the usage the upstream reported in `answer` (if any)."""
        prompt, completion = (_tokens(answer.get("usage")) if answer is not None else None) or (0, 0)
        await self._record(prompt, completion, "completed")

    def observe(self, event: dict[str, Any]) -> bool:
        """A stream event, before it is restored and relayed: take its usage. False: drop the event
        (the usage-only chunk the gateway asked for and the client did not, so its stream keeps its shape)."""
        if "usage" in event:
            usage = event["usage"] if self.client_wants_usage else event.pop("usage")
            tokens = _tokens(usage)
            if tokens is not None:
                self.usage = tokens
                if not self.client_wants_usage and not event.get("choices"):
                    return False
        if self.usage is None:
            for choice in event.get("choices") or ():
                if isinstance(choice, dict):
                    self.streamed_chars += _choice_chars(choice)
        return True

    async def end_stream(self, outcome: str) -> None:
        """The stream ended (completed, failed, or the client left): record what was used."""
        if self.usage is not None:
            prompt, completion = self.usage
        else:
            prompt, completion = self.size // _CHARS_PER_TOKEN, -(-self.streamed_chars // _CHARS_PER_TOKEN)
        final: Outcome = "completed" if outcome == "completed" else "cancelled" if outcome == "cancelled" else "failed"
        await self._record(prompt, completion, final)

    async def _record(self, prompt: int, completion: int, outcome: Outcome) -> None:
        if self._recorded:
            return
        self._recorded = True
        await self.meter.record(self, prompt, completion, outcome)


def _choice_chars(choice: dict[str, Any]) -> int:
    text = choice.get("text")
    count = len(text) if isinstance(text, str) else 0
    delta = choice.get("delta")
    if isinstance(delta, dict):
        content = delta.get("content")
        count += len(content) if isinstance(content, str) else 0
        for call in delta.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            arguments = function.get("arguments") if isinstance(function, dict) else None
            count += len(arguments) if isinstance(arguments, str) else 0
    return count
