"""What the developers are told: one notification per alert group decision (pure)."""

from __future__ import annotations

from pydantic import BaseModel

from tollgate_common.events import Event, EventType

# Which group a recovery resolves: a route.recovered ends that route's upstream.failed group.
RESOLVES = {EventType.ROUTE_RECOVERED: EventType.UPSTREAM_FAILED}


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
    return f"{kind.value}|{event.route or event.subject}", resolved is not None
