"""The events an authorize answer raises (pure): credits refilled, low or exhausted, an invalid-key
burst. A refill and a threshold can both happen in one step (a refill too small for the request's
cost): both events are raised, the refill first, as it happened first."""

from __future__ import annotations

from tollgate_common.contracts.events import Event, EventType, Severity
from tollgate_common.ledger.apikeys import display_prefix
from tollgate_common.ledger.decision import Decision


def events_for(
    d: Decision, route: str, client: str, burst_threshold: int, source: str
) -> list[Event]:
    """Events an answer raises: credits low or exhausted, an invalid-key burst (once a window)."""
    out = []
    who = display_prefix(d.key_id)
    # the key id, for the notifier's owner webhook (issue 13): the subject is for people
    owner = {"key_id": d.key_id, "credits": str(d.credits_remaining)}
    if d.refilled > 0:
        out.append(
            Event(
                type=EventType.CREDITS_REFILLED,
                severity=Severity.INFO,
                route=route,
                subject=who,
                source=source,
                message=f"key {who} was refilled with {d.refilled} credits "
                f"({d.credits_remaining} now)",
                attributes={**owner, "refilled": str(d.refilled)},
            )
        )
    if d.event == "low":
        out.append(
            Event(
                type=EventType.CREDITS_LOW,
                severity=Severity.WARNING,
                route=route,
                subject=who,
                source=source,
                message=f"key {who} is low on credits ({d.credits_remaining} left)",
                attributes=owner,
            )
        )
    elif d.event == "exhausted":
        out.append(
            Event(
                type=EventType.CREDITS_EXHAUSTED,
                severity=Severity.WARNING,
                route=route,
                subject=who,
                source=source,
                message=f"key {who} has used all its credits",
                attributes=owner,
            )
        )
    if d.invalid_count == burst_threshold:
        out.append(
            Event(
                type=EventType.INVALID_KEY_BURST,
                severity=Severity.WARNING,
                route=route,
                subject=client,
                source=source,
                message=f"{d.invalid_count} invalid API keys from {client}",
            )
        )
    return out
