"""Server events (`completion.done`, `anonymize.flagged`, `quota.exceeded`): what webhooks deliver.

Routes and the limiter `emit` an `Event`; the gateway's `EventSink` decides what happens to it
(the webhook dispatcher queues a signed delivery per matching subscription). `emit` never blocks
the request and never raises: a slow or failing receiver must not slow or fail the caller.
Event data carry ids, counts, models and entity types only, never a value.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

EVENT_NAMES = frozenset({"completion.done", "anonymize.flagged", "quota.exceeded"})


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    tenant: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: f"evt_{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        if self.name not in EVENT_NAMES:
            raise ValueError(f"unknown event {self.name!r}; known: {sorted(EVENT_NAMES)}")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.name, "created": self.created, "tenant": self.tenant, "data": self.data}


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


def flagged_event(
    *, tenant: str, key_id: str, request_id: str, endpoint: str, entities: Iterable[str], threshold: int | None
) -> Event | None:
    """`anonymize.flagged` when one request carried `threshold` values or more (None: below it, or off).

    Data: the request and key ids, the endpoint, the count per entity type; never a value."""
    counts = Counter(entities)
    total = sum(counts.values())
    if threshold is None or total < threshold:
        return None
    data = {"request_id": request_id, "key_id": key_id, "endpoint": endpoint, "pii_count": total,
            "threshold": threshold, "pii_types": dict(sorted(counts.items()))}  # fmt: skip
    return Event("anonymize.flagged", tenant, data)


class NullEventSink:
    """No subscriptions: events go nowhere."""

    def emit(self, event: Event) -> None:
        return None
