"""The expiry sweeper: one ``key.expiring`` per key and expiry, ``key_expiring_before_seconds``
before the key's ``expires_at`` (issue 13).

Auth keeps the sorted set ``layout.EXPIRIES`` (key id -> expires_at in ms) for the keys that expire
and are not revoked. Every ``expiry_sweep_interval_seconds`` each notifier replica reads the due
range (now, now + window] and checks each key against its record: a revoked key, a key whose
record says another expiry (the set is an index, the record is the truth) or one already expired
is not warned. For the others a mark per (key, expiry) is claimed with SET NX and, only when it
was new, the ``key.expiring`` event is appended to the events stream (CLAIM_MS says the order):
replicas sweeping at once warn once, a crash cannot leave a lasting mark without its event, and a
moved expiry is a new mark, so it warns again.
The event then takes the notifier's usual path (owner webhook, retries, dedup, dead letters).
No cron and nothing to restart: a replica that starts late simply sweeps the range it finds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tollgate_common.contracts.events import STREAM_KEY, STREAM_MAXLEN, Event, EventType, Severity
from tollgate_common.ledger import keyindex
from tollgate_common.ledger.apikeys import display_prefix
from tollgate_common.ledger.layout import EXPIRIES, legacy_record_key, record_key
from tollgate_common.redis.client import describe
from tollgate_notifier.settings import NotifierSettings

log = logging.getLogger(__name__)
MARK = "tollgate:notifier:expiring:"
PAGE = 500  # keys read per ZRANGE page: one sweep's round trips stay bounded per page
MARK_MARGIN_MS = 86_400_000  # a mark outlives its expiry by a day: no warning after it either

CLAIM_MS = 60_000
"""How long a claimed mark waits for its event: a replica that dies between the claim and the
event leaves a mark that lapses by then, so a later sweep warns after all."""
# Redis Cluster (issue 13): the mark and the events stream are on different slots, so no one step
# holds both. The order keeps "once" and "never a mark without its event": claim the mark (SET NX,
# short-lived), append the event, then make the mark last (SET XX). Replicas racing for a mark:
# one claims it, the others see it taken.


@dataclass(frozen=True, slots=True)
class Record:
    """What a key's record says about its expiry (``None`` for a key that is gone)."""

    expires_ms: int
    revoked: bool


def due(
    indexed: list[tuple[str, int]], records: list[Record | None], now_ms: int
) -> list[tuple[str, int]]:
    """The (key id, expires_at ms) to warn: the index entry agrees with a live record that has
    not expired yet (pure)."""
    return [
        (key_id, ms)
        for (key_id, ms), rec in zip(indexed, records, strict=True)
        if rec is not None and not rec.revoked and rec.expires_ms == ms and ms > now_ms
    ]


def warning(key_id: str, expires_ms: int) -> Event:
    """The key.expiring event of one key and expiry."""
    who = display_prefix(key_id)
    at = datetime.fromtimestamp(expires_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Event(
        type=EventType.KEY_EXPIRING,
        severity=Severity.INFO,
        subject=who,
        source="notifier",
        message=f"key {who} expires at {at}",
        attributes={"key_id": key_id, "expires_at": str(expires_ms // 1000)},
    )


class ExpirySweeper:
    def __init__(self, redis: Any, s: NotifierSettings) -> None:
        self.redis = redis
        self.s = s
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sweep()
            except Exception as exc:  # a Redis outage: try again next round, never die
                log.warning("expiry sweep failed: %s", describe(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.s.expiry_sweep_interval_seconds)

    async def sweep(self, now_ms: int | None = None) -> int:
        """Warn the keys expiring within the window; returns how many events were appended."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        until = now + int(self.s.key_expiring_before_seconds * 1000)
        sent, offset = 0, 0
        while True:
            page = await self.redis.zrangebyscore(
                EXPIRIES, f"({now}", until, start=offset, num=PAGE, withscores=True
            )
            indexed = [(_s(member), int(score)) for member, score in page]
            for key_id, ms in due(indexed, await self._records(indexed), now):
                sent += await self._warn(key_id, ms, now)
            if len(page) < PAGE:
                return sent
            offset += PAGE

    async def _records(self, indexed: list[tuple[str, int]]) -> list[Record | None]:
        hashes = await keyindex.hashes(self.redis, [key_id for key_id, _ in indexed])
        async with self.redis.pipeline(transaction=False) as pipe:
            for (key_id, _), h in zip(indexed, hashes, strict=True):
                hashed = h or ""
                pipe.hmget(record_key(key_id, hashed), "expires_at", "revoked")
                # and where it was before the tagged layout (ledger/migration.py), until it moves
                pipe.hmget(legacy_record_key(hashed), "expires_at", "revoked")
            both = await pipe.execute()
        moved, before = both[::2], both[1::2]
        fields = [
            new if new[0] is not None else old for new, old in zip(moved, before, strict=True)
        ]
        return [
            Record(int(_s(ex)), _s(rev) == "1") if h is not None and ex is not None else None
            for h, (ex, rev) in zip(hashes, fields, strict=True)
        ]

    async def _warn(self, key_id: str, expires_ms: int, now_ms: int) -> int:
        fields = warning(key_id, expires_ms).to_fields()
        ttl = expires_ms - now_ms + MARK_MARGIN_MS
        mark = f"{MARK}{key_id}:{expires_ms}"
        if not await self.redis.set(mark, b"claimed", px=CLAIM_MS, nx=True):
            return 0
        await self.redis.xadd(STREAM_KEY, fields, maxlen=STREAM_MAXLEN, approximate=True)
        await self.redis.set(mark, b"1", px=ttl, xx=True)
        return 1


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
