"""The usage formats (pure): OpenMeter CloudEvents, Stripe meter events, the retry arithmetic."""

from __future__ import annotations

import json

from tollgate_common.contracts.events import UsageEvent, UsageKind
from tollgate_notifier.usage import (
    CLOUDEVENT,
    CLOUDEVENT_BATCH,
    cloudevent,
    openmeter_body,
    retry_delay,
    stripe_request,
)
from tollgate_testkit.receivers import cloudevent_problems

CHARGE = UsageEvent(
    kind=UsageKind.CHARGE,
    charge="c0ffee0001",
    key="abcdefgh",
    route="default/eod",
    plan="pro",
    credits=3,
    ts=1_767_225_600_123,
)
REFUND = CHARGE.model_copy(update={"kind": UsageKind.REFUND})


def test_a_charge_is_a_valid_cloudevent() -> None:
    """id = charge id, subject = key id, time in RFC 3339, data with route and credits."""
    doc = cloudevent(CHARGE, "tollgate", "tollgate.usage")
    assert cloudevent_problems(doc) == []
    assert (doc["id"], doc["subject"], doc["time"]) == (
        "c0ffee0001",
        "abcdefgh",
        "2026-01-01T00:00:00.123Z",
    )
    assert doc["data"] == {
        "kind": "charge",
        "route": "default/eod",
        "plan": "pro",
        "credits": 3,
        "charge_id": "c0ffee0001",
    }


def test_a_refund_has_its_own_id_and_negative_credits() -> None:
    """A refund's id differs from its charge's, and a SUM of credits nets it out."""
    doc = cloudevent(REFUND, "tollgate", "tollgate.usage")
    assert doc["id"] == "c0ffee0001:refund"
    assert isinstance(doc["data"], dict)
    assert doc["data"]["credits"] == -3


def test_one_event_or_a_batch() -> None:
    """One event is sent as application/cloudevents+json, several as the batch type."""
    ctype, body = openmeter_body([CHARGE], "s", "t")
    assert ctype == CLOUDEVENT
    assert json.loads(body)["id"] == "c0ffee0001"
    ctype, body = openmeter_body([CHARGE, REFUND], "s", "t")
    assert ctype == CLOUDEVENT_BATCH
    assert len(json.loads(body)) == 2


def test_stripe_charge_and_refund() -> None:
    """A charge is a meter event; its refund cancels that event by identifier."""
    path, form = stripe_request(CHARGE, "credits", "cus_123")
    assert path == "/v1/billing/meter_events"
    assert form == {
        "event_name": "credits",
        "payload[stripe_customer_id]": "cus_123",
        "payload[value]": "3",
        "identifier": "c0ffee0001",
        "timestamp": "1767225600",
    }
    path, form = stripe_request(REFUND, "credits", "cus_123")
    assert path == "/v1/billing/meter_event_adjustments"
    assert form["cancel[identifier]"] == "c0ffee0001"
    assert form["type"] == "cancel"


def test_retry_delay_doubles_up_to_the_cap() -> None:
    """1, 2, 4, 8 then the cap."""
    assert [retry_delay(n, 1.0, 10.0) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
