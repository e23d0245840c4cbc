"""The outbox sweeper: the usage events that never reached the usage stream, added to it again.

The ledger's scripts keep each usage event the ledger sends in its key's outbox
(tollgate_common/ledger/outbox.py) and the ledger XADDs it after the answer; the exporter removes
it once it has read the event. What stays was never added (a gateway or auth process killed
between its script and its XADD, an XADD that Redis refused) or was read and its removal failed.
Every ``usage_outbox_interval_seconds`` one replica (a ``SET NX PX`` lock, renewed per page)
walks the key set and re-adds the entries older than the horizon, then removes them: at least
once, and the receiver drops a copy that arrived twice by its event id.

The horizon is what the exporter's group has read, less ``usage_outbox_grace_seconds``:
nothing left in the stream that it has not read, "now"; else the time of the last entry it
read. An entry after that may still be waiting in the stream (the exporter is behind, its
endpoint down): re-adding it would only double the backlog. Events the stream's bound dropped
unread (events.USAGE_STREAM_MAXLEN) are still in their outboxes and are re-sent once the
group has read what is left. Entries are compared by their ts (the ledger's clock) with stream ids
(Redis's): the grace covers a skew between the two and the XADD's own delay.

Redis Cluster: every command is on one key (the lock, a key's outbox, the stream), pipelined
without a transaction (redis-py splits a pipeline by slot).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from tollgate_common.contracts.events import (
    USAGE_FIELDS,
    USAGE_STREAM_KEY,
    USAGE_STREAM_MAXLEN,
    UsageEvent,
)
from tollgate_common.ledger import keyindex, outbox
from tollgate_common.ledger.layout import KEYS_SET, outbox_key
from tollgate_common.redis.client import LuaScript
from tollgate_notifier.metrics import Metrics
from tollgate_notifier.settings import NotifierSettings
from tollgate_notifier.streams import id_key

log = logging.getLogger(__name__)
LOCK = "tollgate:notifier:outbox-sweep"
LOCK_MS = 60_000  # renewed before each page: a replica that dies frees it within this long
PER_KEY = 100  # entries read per key and round trip (ZRANGEBYSCORE ... LIMIT)

# The lock's holder renews or frees it only while it is still its own (its token).
_RENEW = LuaScript(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
)
_FREE = LuaScript(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)


def horizon(now_ms: int, last_delivered: str, newest: str | None, grace_ms: int) -> int:
    """The ts below which an outbox entry is re-sent (pure): what the group has read (every
    entry in the stream, ``newest`` the last one or None for none: now; else its last-delivered
    entry's time), less the grace."""
    read = id_key(last_delivered)
    unread = newest is not None and id_key(newest) > read
    return (min(now_ms, read[0]) if unread else now_ms) - grace_ms


class OutboxSweeper:
    def __init__(
        self,
        redis: Any,
        s: NotifierSettings,
        m: Metrics,
        stream: str = USAGE_STREAM_KEY,
    ) -> None:
        self.redis = redis
        self.s = s
        self.m = m
        self.stream = stream

    async def sweep(self, now_ms: int | None = None) -> int:
        """One sweep under the lock; returns how many events were added again (0 when another
        replica holds the lock)."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        token = self.s.consumer
        if not await self.redis.set(LOCK, token, px=LOCK_MS, nx=True):
            return 0
        try:
            before = await self._horizon(now)
            if before is None:
                return 0
            sent = 0
            async for ids in keyindex.id_pages(self.redis, KEYS_SET):
                if not await _RENEW(self.redis, [LOCK], [token, LOCK_MS]):
                    log.warning("outbox sweep: lock lost (a page took over %d ms)", LOCK_MS)
                    return sent
                while ids:  # a key with a full page has more: read it again
                    n, ids = await self._page(ids, before)
                    sent += n
            return sent
        finally:
            await _FREE(self.redis, [LOCK], [token])

    async def _horizon(self, now: int) -> int | None:
        groups = await self.redis.xinfo_groups(self.stream)
        ours = next((g for g in groups if _s(g["name"]) == self.s.usage_group), None)
        if ours is None:  # no exporter's group yet: nothing can be judged unread
            return None
        info = await self.redis.xinfo_stream(self.stream)
        newest = _s(info["last-entry"][0]) if info.get("last-entry") else None
        grace = int(self.s.usage_outbox_grace_seconds * 1000)
        return horizon(now, _s(ours["last-delivered-id"]), newest, grace)

    async def _page(self, ids: list[str], before: int) -> tuple[int, list[str]]:
        """Re-add the entries of these keys' outboxes scored below ``before`` (at most PER_KEY
        each), then remove them; returns how many, and the keys that may have more."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key_id in ids:
                pipe.zrangebyscore(outbox_key(key_id), "-inf", f"({before}", start=0, num=PER_KEY)
            found = await pipe.execute()
        due = [(key_id, m) for key_id, ms in zip(ids, found, strict=True) for m in ms]
        if not due:
            return 0, []
        events: list[dict[str, str]] = []
        for _, m in due:
            try:
                fields = outbox.fields(m)
                UsageEvent.from_fields(fields)
            except ValueError:  # not written by the scripts: dropped, never sent
                log.error("outbox sweep: dropped a malformed entry %r", m)
                continue
            events.append({f: fields[f] for f in USAGE_FIELDS})
        # first into the stream, then out of the outbox: a crash between re-sends, never loses
        async with self.redis.pipeline(transaction=False) as pipe:
            for fields in events:
                pipe.xadd(self.stream, fields, maxlen=USAGE_STREAM_MAXLEN, approximate=True)
            await pipe.execute()
        async with self.redis.pipeline(transaction=False) as pipe:
            for key_id, m in due:
                pipe.zrem(outbox_key(key_id), m)
            await pipe.execute()
        self.m.usage_resent.inc(len(events))
        if events:
            log.info("outbox sweep: %d usage events added to the stream again", len(events))
        more = [key_id for key_id, ms in zip(ids, found, strict=True) if len(ms) == PER_KEY]
        return len(events), more


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
