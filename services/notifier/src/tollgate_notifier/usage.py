"""Usage events in the shapes billing systems ingest (pure): OpenMeter's CloudEvents and Stripe's
meter events, and the exporter's retry arithmetic.

OpenMeter (``POST /api/v1/events``): one CloudEvent 1.0 per usage event, ``id`` the charge id
(a refund's id is derived from it, see ``UsageEvent.id``), ``subject`` the key id, ``data`` with
the route, plan, kind and credits; a refund's credits are negative, so a SUM meter over
``$.credits`` is the net spent. Stripe (``POST /v1/billing/meter_events``, form-encoded): a charge
is a meter event with ``identifier`` the charge id; a refund cancels that event
(``POST /v1/billing/meter_event_adjustments``, possible within Stripe's 24 hours, refunds come
within seconds) instead of sending a negative value.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tollgate_common.contracts.events import UsageEvent, UsageKind

OPENMETER_PATH = "/api/v1/events"
STRIPE_EVENTS_PATH = "/v1/billing/meter_events"
STRIPE_ADJUSTMENTS_PATH = "/v1/billing/meter_event_adjustments"
CLOUDEVENT = "application/cloudevents+json"
CLOUDEVENT_BATCH = "application/cloudevents-batch+json"


def signed_credits(e: UsageEvent) -> int:
    return e.credits if e.kind is UsageKind.CHARGE else -e.credits


def rfc3339(ts_ms: int) -> str:
    t = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cloudevent(e: UsageEvent, source: str, type_: str) -> dict[str, object]:
    """One usage event as a CloudEvent 1.0 (structured mode, JSON)."""
    return {
        "specversion": "1.0",
        "id": e.id,
        "source": source,
        "type": type_,
        "subject": e.key,
        "time": rfc3339(e.ts),
        "datacontenttype": "application/json",
        "data": {
            "kind": e.kind.value,
            "route": e.route,
            "plan": e.plan,
            "credits": signed_credits(e),
            "charge_id": e.charge,
        },
    }


def openmeter_body(events: list[UsageEvent], source: str, type_: str) -> tuple[str, bytes]:
    """The content type and body of one OpenMeter POST: a single event, or a batch."""
    docs = [cloudevent(e, source, type_) for e in events]
    if len(docs) == 1:
        return CLOUDEVENT, json.dumps(docs[0]).encode()
    return CLOUDEVENT_BATCH, json.dumps(docs).encode()


def stripe_request(e: UsageEvent, event_name: str, customer: str) -> tuple[str, dict[str, str]]:
    """The path and form fields of the Stripe call for one usage event."""
    if e.kind is UsageKind.REFUND:
        return STRIPE_ADJUSTMENTS_PATH, {
            "event_name": event_name,
            "type": "cancel",
            "cancel[identifier]": e.charge,
        }
    return STRIPE_EVENTS_PATH, {
        "event_name": event_name,
        "payload[stripe_customer_id]": customer,
        "payload[value]": str(e.credits),
        "identifier": e.id,
        "timestamp": str(e.ts // 1000),
    }


def retry_delay(attempt: int, first: float, cap: float) -> float:
    """The wait after failed attempt ``attempt`` (1-based): ``first`` doubling, at most ``cap``."""
    return float(min(first * 2 ** (attempt - 1), cap))
