"""The event streams: what the gateway and auth append and the notifier consumes.

Two streams. ``tollgate:events`` carries alerts (:class:`Event`): producers append with
:func:`publish` off the response path; a failure to append is logged by the caller and never fails
a client request. ``tollgate:usage`` carries one :class:`UsageEvent` per charge and per refund,
appended by the ledger's Lua scripts in the step that debits or credits (issue 13), read by the
notifier's usage exporter. Entries are flat string maps (Redis stream fields).
"""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tollgate_common.redis.commands import Client

STREAM_KEY = "tollgate:events"
# Producers cap the stream (approximately) so a cluster with no notifier cannot fill Redis; the
# notifier trims far below this, and only what its consumer group has acknowledged.
STREAM_MAXLEN = 100_000


# The usage stream and its bound. The ledger's scripts append with ``XADD NOMKSTREAM MAXLEN ~``:
# nothing until an exporter has created the stream (its consumer group, with MKSTREAM), so a
# cluster that exports nothing stores nothing; then at most about this many, so an exporter that
# is down cannot fill Redis (an entry is ~100 bytes: ~50 MB). The price of the bound: an exporter
# that falls more than this many events behind (at 1,000 charged requests/s, ~8 minutes down)
# loses the oldest unexported ones; tollgate_notifier_usage_overrun says when that happened. The
# exporter itself trims only what its consumer group has acknowledged, far below the bound.
USAGE_STREAM_KEY = "tollgate:usage"
USAGE_STREAM_MAXLEN = 500_000
# The fields each usage entry carries, in the order the ledger writes them (ledger.py, from what
# authorize.lua and refund.lua return): kind (charge|refund), charge (the charge id the gateway
# chose: ``<key id>-<random>``, or an untagged one from before, apikeys.py), key (the key id),
# route, plan, credits (>= 1: debited, or given back), ts (ms since the epoch, the ledger's clock).
USAGE_FIELDS = ("kind", "charge", "key", "route", "plan", "credits", "ts")


class UsageKind(StrEnum):
    CHARGE = "charge"
    REFUND = "refund"


class UsageEvent(BaseModel):
    """One usage entry: what a charge debited, or what a refund gave back."""

    model_config = ConfigDict(frozen=True)

    kind: UsageKind
    charge: str = Field(min_length=1)
    key: str = Field(min_length=1)
    route: str = ""
    plan: str = ""
    credits: int = Field(ge=0)
    ts: int = Field(ge=0)

    @property
    def id(self) -> str:
        """The id a receiver deduplicates by: the charge id, and for its refund a distinct one
        derived from it (':' never occurs in a charge id, so no charge can have it)."""
        return self.charge if self.kind is UsageKind.CHARGE else f"{self.charge}:refund"

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes] | dict[str, str]) -> UsageEvent:
        """Parse a stream entry; raises ``ValueError`` for an entry that is not a usage event."""
        plain = {_s(k): _s(v) for k, v in fields.items()}
        return cls.model_validate({k: plain[k] for k in USAGE_FIELDS if k in plain})


class EventType(StrEnum):
    UPSTREAM_FAILED = "upstream.failed"  # every upstream of a route failed a request
    ROUTE_RECOVERED = "route.recovered"  # a route that had failed served a request again
    CREDITS_LOW = "credits.low"
    CREDITS_EXHAUSTED = "credits.exhausted"
    CREDITS_REFILLED = "credits.refilled"  # a plan's refill added credits (the ledger, lazily)
    KEY_EXPIRING = "key.expiring"  # a key's expires_at is near (the notifier's expiry sweeper)
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


async def publish(redis: Client, event: Event, *, stream: str = STREAM_KEY) -> bytes:
    """Append one event; returns the stream entry id."""
    entry_id: bytes = await redis.xadd(
        stream, event.to_fields(), maxlen=STREAM_MAXLEN, approximate=True
    )
    return entry_id
