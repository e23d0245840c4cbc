"""``Ledger``: runs the authorize and refund scripts against one Redis (one EVALSHA each).

Redis Cluster (layout.py): the two scripts touch only names of the API key's slot. What is
global stays out of them and is done here, beside the script, on its own key:

- the invalid-key counter of the client address: one more small script (INCR, EXPIRE), only on
  the unknown-key answer, the only one that needs the count;
- the usage events of the notifier's exporter (events.USAGE_STREAM_KEY): the scripts return what
  was charged or refunded and the ledger adds the event. The XADD is sent after the answer, never
  before it (no round trip more on the hot path): ``drain()`` waits for the ones under way, and
  the services call it before they close Redis. So that a process killed between the script and
  its XADD, or an XADD that fails, loses no event, the scripts also keep it in the key's outbox
  on its slot (outbox.py) whenever the ledger sends it: the exporter removes it once read, and
  re-sends what stays (the notifier's outbox sweeper).
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib.resources import files
from typing import Any

from tollgate_common.contracts.events import USAGE_FIELDS, USAGE_STREAM_KEY, USAGE_STREAM_MAXLEN
from tollgate_common.ledger import layout, outbox
from tollgate_common.ledger.apikeys import (
    MAX_CREDITS,
    charge_key_id,
    key_hash,
    key_id_of,
    new_charge_id,
    tag_charge_id,
)
from tollgate_common.ledger.decision import Decision, from_script
from tollgate_common.ledger.migration import legacy_exists, migrate_key
from tollgate_common.ledger.settings import LedgerSettings
from tollgate_common.redis.client import LuaScript, describe
from tollgate_common.redis.commands import Scripts

log = logging.getLogger(__name__)

_HERE = files("tollgate_common.ledger")
ME_ROUTE = "_tollgate/me"
"""The usage route of a refill that a /me call applied (no ApiBackend is named so: a Kubernetes
namespace cannot start with '_')."""

NO_STREAM_SECONDS = 1.0
LAYOUT_RECHECK_SECONDS = 30.0
"""How long the ledger trusts what it last read of ``layout.LAYOUT_VERSION``."""
_GET = LuaScript("return redis.call('GET', KEYS[1])")
_EXISTS = LuaScript("return redis.call('EXISTS', KEYS[1])")
# KEYS: the counter. ARGV: its window (s). The expiry only with the first count, as before.
_COUNT_INVALID = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1])) end
return n
"""
# KEYS: the stream. ARGV: its bound, then field/value pairs (events.USAGE_FIELDS). NOMKSTREAM:
# only once an exporter made the stream (no exporter, no cost); MAXLEN ~ drops the oldest.
_ADD_USAGE = """
return redis.call('XADD', KEYS[1], 'NOMKSTREAM', 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 2))
"""


class Ledger:
    """The credit ledger of one Redis, with the settings both services share."""

    def __init__(self, redis: Scripts, settings: LedgerSettings) -> None:
        self.redis = redis
        self.s = settings
        self._authorize = outbox.with_outbox((_HERE / "authorize.lua").read_text())
        self._refund = outbox.with_outbox((_HERE / "refund.lua").read_text())
        self._count_invalid = LuaScript(_COUNT_INVALID)
        self._add_usage = LuaScript(_ADD_USAGE)
        self._sending: set[asyncio.Task[None]] = set()
        # No stream (no exporter made it): charges skip the XADD for a while, so a ledger with no
        # export costs Redis one command per charge, as before, not two. An exporter's stream is
        # seen within NO_STREAM_SECONDS; the charges before are not recorded, as before the
        # exporter first started (README, "Usage events").
        self._no_stream_until = 0.0
        # Whether the stream was there when last seen (None: not yet known). The scripts keep the
        # events in the keys' outboxes unless it was missing: a charge that probes for the stream
        # again after NO_STREAM_SECONDS would otherwise leave, once a second, entries no exporter
        # removes (until they expire). Learnt from each XADD's answer and, while not known to be
        # there, from an EXISTS of its own after the answer (an XADD that keeps failing answers
        # nothing). Before the first answer a process assumes an exporter, as it does to send.
        self._stream: bool | None = None
        self._looking = False
        # Whether old-layout records may still exist, as last read, and until when (monotonic).
        self._legacy: bool = True
        self._legacy_until = 0.0

    async def authorize(
        self,
        raw_key: str,
        path: str,
        cost: int,
        client: str,
        *,
        route: str = "",
        cache_hit: bool = False,
        charge_id: str | None = None,
        now_ms: int | None = None,
        free: bool = False,
    ) -> Decision:
        """One authorize, counted in the key's usage under ``route``; ``charge_id`` chosen by
        the caller (see the package docstring), tagged with the key's id if it is not
        (apikeys.tag_charge_id: the answer's ``charge_id`` is the one to refund); ``now_ms``
        only for tests of the arithmetic. ``free``: the step of ``GET /_tollgate/v1/me``
        (``me``)."""
        s = self.s
        now = int(time.time() * 1000) if now_ms is None else now_ms
        key_id = key_id_of(raw_key)
        if not key_id:  # no key of this shape exists: nothing to ask the script
            return await self._unknown(client, charge_id or "")
        hashed = key_hash(raw_key, s.key_pepper)
        charge_id = tag_charge_id(charge_id, key_id) if charge_id else new_charge_id(key_id)
        keys = layout.authorize_keys(key_id, hashed, charge_id, layout.hour_of(now))
        send, keep = self._exporting()
        args = [
            now,
            cost,
            s.charge_ttl_seconds,
            path,
            s.credits_low_threshold,
            route,
            1 if cache_hit else 0,
            s.usage_retention_days * 86400,
            1 if free else 0,
            MAX_CREDITS,
            1 if keep else 0,
            charge_id,
            outbox.MAXLEN,
        ]
        d = from_script(await self._authorize(self.redis, keys, args), charge_id)
        if (
            d.reason == "invalid_key"
            and await self._legacy_possible()
            and await legacy_exists(self.redis, hashed)
        ):
            # a key of the old layout the start-up migration has not reached: move it, ask again
            await migrate_key(self.redis, key_id, hashed, s.charge_ttl_seconds)
            d = from_script(await self._authorize(self.redis, keys, args), charge_id)
        if d.reason == "invalid_key":
            return await self._unknown(client, charge_id)
        if d.allowed and d.cost > 0 and send:
            # charged now (a repeat of the id answers cost 0), and an exporter may be listening:
            # the script kept this event in the key's outbox, spelled as these fields are
            self._send(("charge", charge_id, d.key_id, route, d.plan, d.cost, now))
        return d

    def _exporting(self) -> tuple[bool, bool]:
        """Whether to send a charge's usage event (an exporter may be listening: no stream was
        missing within NO_STREAM_SECONDS), and whether to keep it in the key's outbox too (the
        stream was there when last seen)."""
        if time.monotonic() < self._no_stream_until:
            return False, False
        return True, self._stream is not False

    def _look(self) -> None:
        """Learn whether the stream is there (one EXISTS, after the answer), unless under way."""
        if self._looking:
            return
        self._looking = True
        task = asyncio.create_task(self._exists())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _exists(self) -> None:
        try:
            self._saw(bool(await _EXISTS(self.redis, [USAGE_STREAM_KEY], [])))
        except Exception as exc:  # the next charge looks again
            log.warning("usage stream not looked for: %s", describe(exc))
        finally:
            self._looking = False

    def _saw(self, stream: bool) -> None:
        self._stream = stream
        if not stream:
            self._no_stream_until = time.monotonic() + NO_STREAM_SECONDS

    async def _legacy_possible(self) -> bool:
        """Whether an unknown key may be one of the old layout, read at most every
        LAYOUT_RECHECK_SECONDS: once the migration marked the layout done (every key of the key
        set moved; on a Cluster at once, migration.py), no old record is left to find, so the
        unknown-key answer costs the script and the counter only, not a probe more. A replica
        that started before the mark probes on for at most that long: harmless, the probe is
        what it did before. What the mark cannot see is a writer of the old layout still running
        after it (an auth replica of before issue 13, mid-rollout): keys it creates then are
        refused until an admin call on the key moves it (auth's store does on every touch) or
        the mark is deleted (the next start-up walks again): finish the rollout before creating
        keys (README "Known gaps")."""
        now = time.monotonic()
        if now >= self._legacy_until:
            mark = await _GET(self.redis, [layout.LAYOUT_VERSION], [])
            self._legacy = mark != str(layout.LAYOUT).encode()
            self._legacy_until = now + LAYOUT_RECHECK_SECONDS
        return self._legacy

    async def _unknown(self, client: str, charge_id: str) -> Decision:
        """The unknown-key answer with this client's count of them (the brute-force guard)."""
        keys = [layout.invalid_key(client)]
        n = await self._count_invalid(self.redis, keys, [self.s.invalid_key_window_seconds])
        return from_script([b"invalid_key", -1, -1, -1, -1, -1, b"", b"", n], charge_id)

    async def me(self, raw_key: str, client: str, *, now_ms: int | None = None) -> Decision:
        """The key's own view (``GET /_tollgate/v1/me``): the authorize step made free
        (authorize.lua says what that means), so the key checks, a due refill and the key's rate
        limit apply as to any request, from the one copy of them, and nothing is charged. A
        refill it applies counts under the usage route ``ME_ROUTE``."""
        return await self.authorize(
            raw_key, "", 0, client, route=ME_ROUTE, now_ms=now_ms, free=True
        )

    async def refund(self, charge_id: str, status_class: str = "") -> int:
        """Give a charge back exactly once; returns the credits after, or -1 if unknown. Either
        way the charge id is dead from now on: an authorize with it debits nothing.
        ``status_class`` ("4xx", "5xx" or ""): what the client was answered instead, counted in
        the charge's usage bucket with the refund. A charge id without its key's id (made
        before the tagged layout) refunds through the old names."""
        key_id = charge_key_id(charge_id)
        keys = layout.refund_keys(key_id, charge_id)
        now = int(time.time() * 1000)
        # a charge id of before the tags has no outbox (its event is sent, not kept)
        keep = key_id is not None and self._exporting()[1]
        args = [
            self.s.charge_ttl_seconds,
            status_class,
            self.s.usage_retention_days * 86400,
            1 if keep else 0,
            now,
            charge_id,
            outbox.MAXLEN,
        ]
        r = await self._refund(self.redis, keys, args)
        left = int(r[0])
        if left >= 0:
            held = [v.decode() if isinstance(v, bytes) else str(v) for v in r[1:4]]
            fields = ("refund", charge_id, held[0], held[2], held[1], int(r[4]), now)
            # after the answer too (a deadline that cancels the caller cannot cancel the event);
            # queued behind this process's charge events, so a refund's follows its charge's
            self._send(fields, after=tuple(self._sending))
        return left

    def _send(self, fields: tuple[Any, ...], after: tuple[asyncio.Task[None], ...] = ()) -> None:
        """Add a usage event after the answer, once the events ``after`` are added: the caller
        does not wait for it."""
        if not self._stream:  # not known yet, or missing when last seen: look
            self._look()
        task = asyncio.create_task(self._add(fields, after))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _add(self, fields: tuple[Any, ...], after: tuple[asyncio.Task[None], ...]) -> None:
        """One usage event (fields: kind, charge, key, route, plan, credits, ts). A stream that
        refuses it (a WRONGTYPE key, OOM, Redis gone) never fails the request or refund (the
        credits moved already): the event stays in the key's outbox, and the notifier's outbox
        sweeper sends it later."""
        pairs = [x for kv in zip(USAGE_FIELDS, fields, strict=True) for x in kv]
        if after:
            await asyncio.gather(*after)  # they never raise (this method logs instead)
        try:
            added = await self._add_usage(
                self.redis, [USAGE_STREAM_KEY], [USAGE_STREAM_MAXLEN, *pairs]
            )
            self._saw(added is not None)  # None: NOMKSTREAM found no stream
        except Exception as exc:
            log.warning("usage event of charge %s not added: %s", fields[1], describe(exc))

    async def drain(self) -> None:
        """Wait for the usage events under way (before the Redis client closes)."""
        while self._sending:
            await asyncio.gather(*self._sending)
