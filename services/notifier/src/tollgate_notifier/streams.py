"""What the notifier's two stream readers (the alert consumer and the usage exporter) share:
their consumer group (create it, trim only what it has acknowledged) and their loops (each step
again and again, backing off after a failure, until stopped)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import ResponseError

from tollgate_common.redis.commands import Client

# After a failed step a loop waits FIRST_BACKOFF seconds, doubling up to MAX_BACKOFF; a step
# that succeeds resets it. Short enough to notice a Redis restart within seconds, long enough
# not to spin on a Redis that is down.
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 5.0


class Reader(Protocol):
    healthy: bool  # whether the last step of any of its loops succeeded (readiness)


async def run_loop(
    reader: Reader,
    step: Callable[[], Awaitable[None]],
    stopping: asyncio.Event,
    report: Callable[[str, Exception], None],
    recover: Callable[[], Awaitable[None]],
) -> None:
    """Run ``step`` until ``stopping`` is set. A failure is reported (with the step's name),
    waited out (cut short by ``stopping``), then ``recover`` runs (Redis may have restarted empty:
    the group is gone); an error of ``recover`` is left for the next step to meet."""
    backoff = FIRST_BACKOFF
    while not stopping.is_set():
        try:
            await step()
            reader.healthy = True
            backoff = FIRST_BACKOFF
        except Exception as exc:
            reader.healthy = False
            report(getattr(step, "__name__", "step"), exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
            with contextlib.suppress(Exception):
                await recover()


async def stop_loops(
    stopping: asyncio.Event, tasks: list[asyncio.Task[None]], grace: float
) -> None:
    """Stop the loops: each finishes the step in hand within ``grace`` seconds, or is cancelled."""
    stopping.set()
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for t in pending:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


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
