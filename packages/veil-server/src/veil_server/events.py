"""Server events (`completion.done`, `anonymize.flagged`, `quota.exceeded`): what webhooks deliver.

Routes and the limiter `emit` an `Event`; the gateway's `EventSink` decides what happens to it
(the webhook dispatcher queues a signed delivery per matching subscription). `emit` never blocks
the request and never raises: a slow or failing receiver must not slow or fail the caller.
Event data carry ids, counts, models and entity types only, never a value.
"""

from __future__ import annotations

import time
import uuid
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


class NullEventSink:
    """No subscriptions: events go nowhere."""

    def emit(self, event: Event) -> None:
        return None
