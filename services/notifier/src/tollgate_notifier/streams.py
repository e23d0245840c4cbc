"""Consumer-group housekeeping shared by the notifier's two consumers (alerts and usage export):
create the group, and trim only what the group has acknowledged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError


@dataclass(frozen=True, slots=True)
class GroupState:
    removed: int  # entries trimmed this time
    lag: int  # entries not yet delivered to the group
    pending: int  # delivered, not acknowledged
    overrun: bool  # entries were trimmed (by a producer's MAXLEN) before the group read them


async def ensure_group(redis: Any, stream: str, group: str) -> None:
    """Create ``group`` on ``stream`` (and the stream) from the start, unless it exists."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def trim_acknowledged(redis: Any, stream: str, group: str) -> GroupState:
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
    # Our own trims below never delete past `last`; a deleted id beyond it was a producer's.
    deleted = _s(info.get("max-deleted-entry-id") or "0-0")
    # MINID keeps entries with id >= floor; the floor entry itself may still be needed.
    removed: int = await redis.xtrim(stream, minid=floor, approximate=False)
    return GroupState(
        removed=removed,
        lag=int(ours.get("lag") or 0),
        pending=int(summary["pending"]),
        overrun=id_key(deleted) > id_key(last),
    )


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
