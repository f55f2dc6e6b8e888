"""The webhook dispatcher: the gateway's EventSink, delivering signed events in the background.

    route ──emit(event)──▶ bounded buffer ──▶ background task ──▶ delivery rows (StateDB)
                                                   │
                                                   └─▶ claim due rows ─▶ POST, signed ─▶ log the attempt

`emit` never blocks and never raises: it appends to a bounded in-memory buffer (a full buffer
drops the event and counts it in `dropped`) and wakes the task. The task, started and stopped
with the app, writes one delivery row per matching subscription, then claims due deliveries
(with a lease, so replicas never send the same one at the same time) and POSTs them with
httpx, at most `concurrency` at once:

    X-Veil-Signature: t=…,v1=…      veil.webhooks.sign(secret, body): receivers call verify()
    X-Veil-Event: anonymize.flagged
    X-Veil-Delivery: whd_…          the same on every retry: receivers drop duplicates by it

A 2xx answer is success. A network error, a timeout, 408, 429 or 5xx is retried after an
exponential backoff with jitter (honouring a 429/503 `Retry-After`), up to `max_attempts`;
any other status (and a redirect, never followed) fails the delivery at once. Events still in
the buffer when the process stops are lost (at most `queue_size`); delivery rows are not: a
restarted process, or another replica, sends them (at least once). Finished deliveries and their
log are deleted after `log_retention_days`.

SSRF. Unless `server.webhooks.allow_private_addresses` is on, a receiver's host name is
resolved before each attempt, every address must be public, and the request is sent to the
address checked (Host header and TLS server name kept), so a DNS answer that changes between
the check and the connection cannot reach an internal address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import threading
import time
import uuid
from collections import deque
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio.to_thread
import httpx

from veil.webhooks import sign
from veil_server import __version__
from veil_server.events import Event
from veil_server.metrics import Metrics
from veil_server.settings import WebhookSettings
from veil_server.webhooks import Delivery, Status, WebhookStore, is_public

log = logging.getLogger("veil_server.webhooks")

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504}) | frozenset(range(505, 600))
_BATCH = 500
GATHER_SECONDS = 0.05
"""How long the dispatcher lets events gather before it stores them (in one transaction)."""
_PRUNE_EVERY = 3600.0


def backoff(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds before retry number `attempt` (1 = the first retry): base·2^(attempt-1), capped,
    with "equal jitter" (between half and all of it), so that failed receivers are not hit by
    every retry at the same instant when they come back."""
    delay = min(cap, base * 2.0 ** max(0, attempt - 1))
    jitter: float = (rng or random).uniform(0, delay / 2)
    return delay / 2 + jitter


def retry_after(response_headers: httpx.Headers, cap: float) -> float | None:
    value = response_headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), cap)


class AddressRefused(Exception):
    """The receiver's host resolves to a non-public address (SSRF protection)."""


class WebhookDispatcher:
    """The EventSink that turns events into signed, retried webhook deliveries."""

    def __init__(
        self,
        store: WebhookStore,
        settings: WebhookSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        instance: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.owner = instance or uuid.uuid4().hex[:12]
        self._transport = transport
        self._buffer: deque[Event] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self.metrics = metrics
        self.dropped = 0
        self.errors = 0
        self._rng = random.Random()  # noqa: S311 - jitter, not a secret
        self._pruned = 0.0

    # -- EventSink ----------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Queue an event for delivery: never blocks, never raises (a full buffer drops it)."""
        try:
            if len(self._buffer) >= self.settings.queue_size:
                self.dropped += 1
                if self.metrics is not None:
                    self.metrics.webhook_dropped.inc()
                log.warning("webhook buffer full: event %s (%s) dropped", event.id, event.name)
                return
            self._buffer.append(event)
            self._poke()
        except Exception:  # never fail the request that emitted
            self.dropped += 1

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        timeout = httpx.Timeout(self.settings.timeout, connect=min(self.settings.timeout, 5.0))
        self._client = httpx.AsyncClient(
            transport=self._transport, timeout=timeout, follow_redirects=False, trust_env=False,
            headers={"User-Agent": f"veil-webhooks/{__version__}", "Content-Type": "application/json"},
        )  # fmt: skip
        self._task = asyncio.create_task(self._run(), name="veil-webhooks")
        if self._buffer:
            self._wake.set()

    async def stop(self) -> None:
        """Stop the task: attempts under way are cancelled (their rows are sent again later)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for running in list(self._in_flight):
            running.cancel()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._loop = self._wake = None

    def wake(self) -> None:
        """Look for due deliveries now (after a ping was written, for instance)."""
        self._poke()

    # -- the loop -------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            try:
                timeout = await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the state database is down, …: retry later, never die
                self.errors += 1
                log.warning("webhook dispatcher: %s; retrying in %.0f s", type(exc).__name__,
                            self.settings.poll_seconds)  # fmt: skip
                timeout = self.settings.poll_seconds
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
            # comes with the wake-up, and stop() then waited for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            if self._buffer:
                # Every request emits an event: let the ones of the next few milliseconds join
                # this one, so that a busy gateway writes them in one transaction, not one each.
                await asyncio.sleep(GATHER_SECONDS)

    async def _step(self) -> float:
        """Store buffered events as deliveries, claim due ones and start them: one trip to the
        state database (a worker thread). Returns how long to sleep before the next step."""
        if time.monotonic() - self._pruned > _PRUNE_EVERY:
            self._pruned = time.monotonic()
            horizon = time.time() - self.settings.log_retention_days * 86400
            await anyio.to_thread.run_sync(self.store.prune, horizon)
        while True:
            batch = [self._buffer.popleft() for _ in range(min(_BATCH, len(self._buffer)))]
            free = self.settings.concurrency - len(self._in_flight)
            last = not self._buffer  # claim only with the last batch
            try:
                due, due_in = await anyio.to_thread.run_sync(self._store_trip, batch, free if last else 0)
            except Exception:
                # Put them back (in order) for the next round, unless that would overflow.
                room = self.settings.queue_size - len(self._buffer)
                self._buffer.extendleft(reversed(batch[:room]))
                self.dropped += max(0, len(batch) - room)
                raise
            if last:
                break
        for delivery in due:
            task = asyncio.create_task(self._deliver(delivery))
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        if self._buffer:
            return 0.0
        if len(self._in_flight) >= self.settings.concurrency:
            return self.settings.poll_seconds  # a finishing attempt wakes the loop
        return self.settings.poll_seconds if due_in is None else min(due_in, self.settings.poll_seconds)

    def _store_trip(self, batch: list[Event], free: int) -> tuple[list[Delivery], float | None]:
        """In a worker thread: the deliveries of `batch`, then up to `free` due ones claimed, then
        the seconds to the next due one (None: none pending)."""
        if batch:
            self.store.fan_out(batch)
        if free <= 0:
            return [], None
        lease = self.settings.timeout + 30.0
        due = self.store.claim_due(self.owner, limit=free, lease=lease)
        return due, self.store.seconds_to_next_due()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._wake is not None:
            self._wake.set()

    # -- one attempt ------------------------------------------------------------------------------

    async def _deliver(self, delivery: Delivery) -> None:
        started = time.perf_counter()
        code: int | None = None
        error: str | None = None
        retry_in: float | None = None
        try:
            if not delivery.signing_secrets:
                error = "secret_unreadable"
            else:
                code, retry_in = await self._post(delivery)
        except AddressRefused:
            error = "address_refused"
        except httpx.TimeoutException:
            error = "timeout"
        except httpx.TransportError as exc:
            error = f"network:{type(exc).__name__}"
        latency_ms = (time.perf_counter() - started) * 1000
        finished = time.time()
        attempt = delivery.attempts + 1
        status: Status
        next_attempt: float | None = None
        retryable = (error is not None and error.startswith(("timeout", "network"))) or code in RETRY_STATUSES
        if code is not None and 200 <= code < 300:
            status = "delivered"
        elif retryable and attempt < self.settings.max_attempts:
            status = "pending"
            delay = backoff(attempt, base=self.settings.backoff_seconds, cap=self.settings.backoff_max_seconds,
                            rng=self._rng)  # fmt: skip
            next_attempt = finished + max(delay, retry_in or 0.0)
        else:
            status = "failed"
            if code is not None and error is None:
                error = "gave_up" if retryable else "refused"
        if self.metrics is not None:
            self.metrics.webhook_attempts.labels("retry" if status == "pending" else status).inc()
        try:
            await anyio.to_thread.run_sync(
                lambda: self.store.record_attempt(
                    delivery, self.owner, status=status, status_code=code, error=error, latency_ms=latency_ms,
                    next_attempt=next_attempt, now=finished,
                )
            )  # fmt: skip
        except Exception as exc:  # the lease runs out and the delivery is tried again
            self.errors += 1
            log.warning("webhook delivery %s: cannot log the attempt (%s)", delivery.id, type(exc).__name__)

    async def _post(self, delivery: Delivery) -> tuple[int, float | None]:
        assert self._client is not None
        url, host_header, extensions = await self._target(delivery.url)
        headers = {
            "X-Veil-Signature": sign(delivery.signing_secrets, delivery.body),
            "X-Veil-Event": delivery.event,
            "X-Veil-Delivery": delivery.id,
        }
        if host_header is not None:
            headers["Host"] = host_header
        request = self._client.build_request("POST", url, content=delivery.body, headers=headers,
                                             extensions=extensions)  # fmt: skip
        response = await self._client.send(request, stream=True)  # the receiver's body is never read
        await response.aclose()
        wait = None
        if response.status_code in (429, 503):
            wait = retry_after(response.headers, self.settings.backoff_max_seconds)
        return response.status_code, wait

    async def _target(self, url: str) -> tuple[str, str | None, dict[str, Any]]:
        """The URL to connect to: as given, or pinned to a checked public address (SSRF)."""
        if self.settings.allow_private_addresses:
            return url, None, {}
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            if not is_public(literal):
                raise AddressRefused(host)
            return url, None, {}
        assert self._loop is not None
        try:
            infos = await self._loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpx.ConnectError(f"cannot resolve the receiver's host ({type(exc).__name__})") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        if not addresses or not all(is_public(address) for address in addresses):
            raise AddressRefused(host)
        chosen = addresses[0]
        netloc = f"[{chosen}]" if chosen.version == 6 else str(chosen)
        if parts.port is not None:
            netloc += f":{parts.port}"
        pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        host_header = parts.netloc.rpartition("@")[2]
        return pinned, host_header, ({"sni_hostname": host} if parts.scheme == "https" else {})
