"""What the developers are told: one notification per alert group decision (pure)."""

from __future__ import annotations

from pydantic import BaseModel

from tollgate_common.contracts.events import Event, EventType

# Which group a recovery resolves: a route.recovered ends that route's upstream.failed group.
RESOLVES = {EventType.ROUTE_RECOVERED: EventType.UPSTREAM_FAILED}
# Events about one key group by the key, not by the route it was used on: two keys running low
# on one route are two things to tell (and two owners to tell, issue 13).
BY_SUBJECT = frozenset(
    {EventType.CREDITS_LOW, EventType.CREDITS_EXHAUSTED, EventType.CREDITS_REFILLED}
)
# A key.expiring is about one key and one expiry: its own group, so the grouping's repeat interval
# never folds the warning of a moved expiry into the one before it.
BY_EXPIRY = frozenset({EventType.KEY_EXPIRING})


class Notification(BaseModel):
    id: str  # idempotency key: group + sequence number
    group: str
    type: str
    status: str  # firing | resolved
    severity: str
    route: str
    subject: str
    count: int  # events folded into this notification
    message: str
    attributes: dict[str, str] = {}  # the event's (key_id and credits for an owner webhook)

    @property
    def title(self) -> str:
        what = self.route or self.subject or "tollgate"
        if self.status == "resolved":
            return f"[RESOLVED] {self.type} on {what}"
        return f"[{self.severity.upper()}] {self.type} on {what}"

    def text(self) -> str:
        lines = [self.title, "", self.message]
        if self.status == "firing" and self.count > 1:
            lines.append(f"({self.count} events in this group since the last notification)")
        return "\n".join(lines)


def group_of(event: Event) -> tuple[str, bool]:
    """The alert group an event belongs to, and whether it resolves that group."""
    resolved = RESOLVES.get(event.type)
    kind = resolved or event.type
    if kind in BY_EXPIRY:
        key = event.attributes.get("key_id", event.subject)
        return f"{kind.value}|{key}@{event.attributes.get('expires_at', '')}", False
    scope = event.subject if kind in BY_SUBJECT else event.route
    return f"{kind.value}|{scope or event.route or event.subject}", resolved is not None
