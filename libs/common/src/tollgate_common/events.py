"""The event stream: what the gateway and auth append and the notifier consumes.

Producers append with :func:`publish` off the response path; a failure to append is logged by the
caller and never fails a client request. Entries are flat string maps (Redis stream fields).
"""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

STREAM_KEY = "tollgate:events"
# Producers cap the stream (approximately) so a cluster with no notifier cannot fill Redis; the
# notifier trims far below this, and only what its consumer group has acknowledged.
STREAM_MAXLEN = 100_000


class EventType(StrEnum):
    UPSTREAM_FAILED = "upstream.failed"  # every upstream of a route failed a request
    ROUTE_RECOVERED = "route.recovered"  # a route that had failed served a request again
    CREDITS_LOW = "credits.low"
    CREDITS_EXHAUSTED = "credits.exhausted"
    KEY_REVOKED = "key.revoked"
    INVALID_KEY_BURST = "key.invalid_burst"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Event(BaseModel):
    """One event. ``route`` and ``subject`` group events (which backend, which key or client)."""

    model_config = ConfigDict(frozen=True)

    type: EventType
    severity: Severity = Severity.WARNING
    route: str = ""
    subject: str = ""
    message: str = ""
    source: str = ""
    ts: float = Field(default_factory=time.time)
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    attributes: dict[str, str] = Field(default_factory=dict)
    # The W3C trace context of the request that produced the event ("" when tracing is off or
    # the producer was not serving a request): the notifier links its delivery span to it.
    traceparent: str = ""
    tracestate: str = ""

    def to_fields(self) -> dict[str, str]:
        fields = {k: str(v) for k, v in self.model_dump(exclude={"attributes"}).items()}
        fields.update({f"attr.{k}": v for k, v in self.attributes.items()})
        return fields

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes] | dict[str, str]) -> Event:
        """Parse a stream entry; raises ``ValueError`` for an entry that is not an event."""
        plain = {_s(k): _s(v) for k, v in fields.items()}
        attrs = {k[5:]: v for k, v in plain.items() if k.startswith("attr.")}
        base: dict[str, Any] = {k: v for k, v in plain.items() if not k.startswith("attr.")}
        return cls.model_validate({**base, "attributes": attrs})


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


async def publish(redis: Any, event: Event, *, stream: str = STREAM_KEY) -> bytes:
    """Append one event; returns the stream entry id."""
    entry_id: bytes = await redis.xadd(
        stream, event.to_fields(), maxlen=STREAM_MAXLEN, approximate=True
    )
    return entry_id
