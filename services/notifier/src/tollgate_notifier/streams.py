"""Consumer-group housekeeping shared by the notifier's two consumers (alerts and usage export):
create the group, and trim only what the group has acknowledged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from tollgate_common.redis.commands import Client


@dataclass(frozen=True, slots=True)
class GroupState:
    removed: int  # entries trimmed this time
    lag: int  # entries not yet delivered to the group
    pending: int  # delivered, not acknowledged
    overrun: bool  # entries were trimmed (by the producers' MAXLEN) before the group read them


async def ensure_group(redis: Client, stream: str, group: str) -> None:
    """Create ``group`` on ``stream`` (and the stream) from the start, unless it exists."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def trim_acknowledged(redis: Client, stream: str, group: str) -> GroupState:
    """Drop the entries ``group`` has acknowledged: older than both its oldest pending entry and
    its last-delivered id; nothing unacknowledged is ever dropped. (Only ``group`` is consulted:
    one group per stream.)"""
    groups = await redis.xinfo_groups(stream)
    ours = next((g for g in groups if _s(g["name"]) == group), None)
    if ours is None:
        return GroupState(0, 0, 0, False)
    last = _s(ours["last-delivered-id"])
    floor = last
    summary = await redis.xpending(stream, group)
    if summary["pending"]:
        floor = min(floor, _s(summary["min"]), key=id_key)
    info = await redis.xinfo_stream(stream)
    # MINID keeps entries with id >= floor; the floor entry itself may still be needed.
    removed: int = await redis.xtrim(stream, minid=floor, approximate=False)
    return GroupState(
        removed=removed,
        lag=int(ours.get("lag") or 0),
        pending=int(summary["pending"]),
        overrun=overrun(info, last),
    )


def overrun(info: dict[Any, Any], last_delivered: str) -> bool:
    """Whether entries the group never read were trimmed (XINFO STREAM ``info``). Trimming only
    ever removes the head and our own trim keeps the group's last-delivered entry, so something
    unread was lost exactly when entries were removed and the head now lies beyond that entry
    (or, with all of them gone, the newest one was never delivered)."""
    removed = int(info.get("entries-added") or 0) - int(info.get("length") or 0)
    if removed <= 0:
        return False
    first = info.get("first-entry")
    if not first:
        return id_key(_s(info["last-generated-id"])) > id_key(last_delivered)
    return id_key(_s(first[0])) > id_key(last_delivered)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
