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
    """Events an answer raises: a refill, credits low or exhausted (the key's owner hears them),
    an invalid-key burst (once a window)."""
    who = display_prefix(d.key_id)
    # the key id, for the notifier's owner webhook (issue 13): the subject is for people
    owner = {"key_id": d.key_id, "credits": str(d.credits_remaining)}
    raised: list[tuple[EventType, Severity, str, str, dict[str, str]]] = []
    if d.refilled > 0:
        said = f"key {who} was refilled with {d.refilled} credits ({d.credits_remaining} now)"
        refilled = {**owner, "refilled": str(d.refilled)}
        raised.append((EventType.CREDITS_REFILLED, Severity.INFO, who, said, refilled))
    if d.event == "low":
        said = f"key {who} is low on credits ({d.credits_remaining} left)"
        raised.append((EventType.CREDITS_LOW, Severity.WARNING, who, said, owner))
    elif d.event == "exhausted":
        said = f"key {who} has used all its credits"
        raised.append((EventType.CREDITS_EXHAUSTED, Severity.WARNING, who, said, owner))
    if d.invalid_count == burst_threshold:
        said = f"{d.invalid_count} invalid API keys from {client}"
        raised.append((EventType.INVALID_KEY_BURST, Severity.WARNING, client, said, {}))
    return [
        Event(
            type=kind,
            severity=severity,
            route=route,
            subject=subject,
            source=source,
            message=message,
            attributes=attributes,
        )
        for kind, severity, subject, message, attributes in raised
    ]
