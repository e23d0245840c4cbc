"""Keys, plans and credits in Redis: the only module of the auth service that talks to Redis.

The hot path (authorize, refund) is tollgate_common.ledger.Ledger: one EVALSHA each, called by
the service directly. The admin calls here are not on the hot path. Redis Cluster (issue 13):
every script and command here is on one slot (the key's own names share its tag, ledger/layout
.py; the plan, the sets, id -> hash and the expiry index are one key each), so what the earlier
multi-slot scripts guarded by atomicity is kept by the order of single-slot steps: a key is
attached to a plan only while the plan exists and a plan is deleted only while no live key uses
it (``create_key`` and ``delete_plan`` argue it), a plan is replaced in one step and its copies
converge on its last version (ledger/plancopy.py), and a balance changes only within
0..MAX_CREDITS (one script on the record).

Plans: the authorize step reads a key's copy of its plan (ledger/plancopy.py), written here
whenever a key gets a plan (create, patch) and fanned out over the plan's member set whenever the
plan changes (``put_plan``: one small script per key on the plan, so an update of a plan with
100k keys is 100k script calls, in pipelined pages, on the admin path; the keys see the new plan
one by one within that time). Keys of the untagged layout move on first touch here
(ledger/migration.py) as they do in the ledger, on one plain Redis only.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from tollgate_auth.errors import Conflict, Invalid, NotFound
from tollgate_auth.keys import display_prefix, key_hash, new_key
from tollgate_auth.models import (
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyPatch,
    Plan,
    PlanRefill,
)
from tollgate_common.ledger import keyindex
from tollgate_common.ledger.apikeys import MAX_CREDITS
from tollgate_common.ledger.layout import (
    EXPIRIES,
    KEYS_SET,
    PLANS_SET,
    id_key,
    legacy_record_key,
    plan_copy_key,
    plan_key,
    plan_keys_key,
    record_key,
    usage_key,
)
from tollgate_common.ledger.migration import migrate_key, on_cluster
from tollgate_common.ledger.plancopy import PlanCopies, copy_args, version_of
from tollgate_common.ledger.refill import REFILLED_AT, Refill, due_at, period_start
from tollgate_common.redis.client import LuaScript
from tollgate_common.redis.commands import Client

# Redis Cluster (issue 13): every script and command below is on one slot. A key's own names
# (record, plan copy) share its tag; the plan, the sets and the id -> hash pointer are each on
# their own slot and written by separate single-key steps, in an order that keeps the invariants
# the one-Redis scripts kept by atomicity (see create_key and delete_plan).

# KEYS: the plan. ARGV: its field/value pairs. Replaces the plan in one step and returns its new
# version: above the last one and at least the server's clock in ms, so a plan deleted and made
# again still outgrows every copy of before (plancopy.py orders copies by it).
PUT_PLAN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = math.max((tonumber(redis.call('HGET', KEYS[1], 'version') or '0') or 0) + 1, now)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', string.format('%d', v), unpack(ARGV))
return v
"""

# The deletion mark, the plan's field DELETING: "<token>:<until, server ms>".
_NOW_AND_MARK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mark = redis.call('HGET', KEYS[1], 'deleting')
local token, untl = nil, 0
if mark then
  token, untl = string.match(mark, '^(.*):(%d+)$')
  untl = tonumber(untl) or 0
end
"""

# KEYS: the plan. Returns {0} when there is no such plan, {-1} while a deletion of it is under
# way, else {1, field, value, ...}: the one read create and patch check a plan with.
CHECK_PLAN = (
    _NOW_AND_MARK
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
if mark and untl > now then return {-1} end
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, 1)
return out
"""
)

# KEYS: the plan. ARGV: token, how long the mark lives (ms), '1' to renew a mark set before.
# Returns 0 when there is no such plan, -2 while another deletion holds it, -3 when a renewed
# mark is gone (put_plan replaced the plan: the deletion gives up), else 1.
MARK_DELETING = (
    _NOW_AND_MARK
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if mark and token ~= ARGV[1] and untl > now then return -2 end
if ARGV[3] == '1' and token ~= ARGV[1] then return -3 end
local deadline = string.format('%d', now + tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'deleting', ARGV[1] .. ':' .. deadline)
return 1
"""
)

# KEYS: the plan. ARGV: token, '1' to delete the plan, '0' to lift the mark only. Acts only
# while the mark is this deletion's and alive; returns 1 when it did, else 0.
END_DELETING = (
    _NOW_AND_MARK
    + """
if not mark or token ~= ARGV[1] or untl <= now then return 0 end
if ARGV[2] == '1' then redis.call('DEL', KEYS[1]) else redis.call('HDEL', KEYS[1], 'deleting') end
return 1
"""
)

# KEYS: the record, the plan copy. ARGV: '1' when the record must exist, n, n field/value
# pairs for the record, then plancopy.WRITE's ARGV ('' alone: leave the copy). Returns -2 when
# the record must exist and does not (nothing written), else plancopy.WRITE's answer (or 1).
RECORD = """
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
local n = tonumber(ARGV[2])
if n > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 3, 2 + 2 * n)) end
local first = 3 + 2 * n
if ARGV[first] == nil then return 1 end
local plan = ARGV[first]
redis.call('DEL', KEYS[2])
if plan == '' or #ARGV < first + 2 then return 0 end
redis.call('HSET', KEYS[2], 'name', plan, 'version', ARGV[first + 1], unpack(ARGV, first + 2))
return 1
"""

# KEYS: a key's plan copy. ARGV: the plan deleted. Drops the copy if it is of that plan.
DROP_COPY = """
if redis.call('HGET', KEYS[1], 'name') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: a set. ARGV: members. Client has no SADD/SREM of its own (redis/commands.py).
SADD = "return redis.call('SADD', KEYS[1], unpack(ARGV))"
SREM = "return redis.call('SREM', KEYS[1], unpack(ARGV))"

# KEYS: record. ARGV: credits to add, the maximum balance.
# Returns -3 when the record is gone, -1 below zero, -2 above the maximum, else 0.
ADD_CREDITS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -3 end
local after = (tonumber(redis.call('HGET', KEYS[1], 'credits') or '0') or 0) + tonumber(ARGV[1])
if after < 0 then return -1 end
if after > tonumber(ARGV[2]) then return -2 end
redis.call('HINCRBY', KEYS[1], 'credits', ARGV[1])
return 0
"""

DELETE_MARK_MS = 60_000  # renewed every page of the walk: a crashed deletion frees it in a minute
BACKFILL_PAGE = 500


class Store:
    def __init__(self, redis: Client, pepper: str, charge_ttl_seconds: int = 3600) -> None:
        """``charge_ttl_seconds``: the ledger's (LedgerSettings; how long a moved record's
        pointer lives, ledger/migration.py)."""
        self.redis = redis
        self.pepper = pepper
        self.charge_ttl_seconds = charge_ttl_seconds
        self._copies = PlanCopies()
        self._put_plan = LuaScript(PUT_PLAN)
        self._check_plan = LuaScript(CHECK_PLAN)
        self._mark_deleting = LuaScript(MARK_DELETING)
        self._end_deleting = LuaScript(END_DELETING)
        self._write_record = LuaScript(RECORD)
        self._drop_copy = LuaScript(DROP_COPY)
        self._sadd = LuaScript(SADD)
        self._srem = LuaScript(SREM)
        self._add_credits = LuaScript(ADD_CREDITS)
        self._cluster: bool | None = None  # asked once (migration.on_cluster)

    # --- keys
    async def create_key(self, req: KeyCreate) -> KeyCreated:
        """A new key, attached to its plan only while the plan exists. The order is what keeps
        a key off a plan being deleted (delete_plan's half of the argument): the key joins the
        indexes and the plan's member set, then its record is written, and only then the plan
        is checked (one read). A check that finds the plan alive and unmarked came before the
        deletion set its mark, so that deletion's walk, which starts after the mark, reads this
        record and counts the key: the plan stays. A check that finds the plan gone or marked
        undoes everything: nobody holds the secret yet, so the key was never served."""
        key_id, raw = new_key()
        hashed = key_hash(raw, self.pepper)
        plan = req.plan
        rk, copy = record_key(key_id, hashed), plan_copy_key(key_id)
        if plan:
            await self._sadd(self.redis, [plan_keys_key(plan)], [key_id])
        await self._sadd(self.redis, [KEYS_SET], [key_id])
        await self.redis.set(id_key(key_id), hashed.encode())
        seen = await self._plan_state(plan) if plan else {}
        if seen is None:
            await self._undo_create(key_id, plan)
            raise NotFound(f"no such plan: {plan}")
        fields = {
            "id": key_id,
            "name": req.name,
            "plan": plan,
            "credits": req.credits,
            "revoked": 0,
            "expires_at": _ms(req.expires_at),
            "created_at": time.time(),
            **_refill_start(seen),
        }
        await self._write_record(self.redis, [rk, copy], ["0", *_record_args(fields, plan, seen)])
        if plan and not await self._confirm(rk, copy, plan, seen):
            await self._undo_create(key_id, plan, rk, copy)
            raise NotFound(f"no such plan: {plan}")
        await self._index_expiry(key_id, _ms(req.expires_at))
        info = await self.get_key(key_id)
        return KeyCreated(**info.model_dump(), key=raw)

    async def _plan_state(self, plan: str) -> dict[bytes, bytes] | None:
        """The plan's fields, or None when it does not exist or is being deleted (one read)."""
        out = await self._check_plan(self.redis, [plan_key(plan)], [])
        if int(out[0]) != 1:
            return None
        return dict(zip(out[1::2], out[2::2], strict=True))

    async def _confirm(self, rk: str, copy: str, plan: str, seen: dict[bytes, bytes]) -> bool:
        """The check after the write: the plan is alive and unmarked; a plan updated since it
        was read is copied again (the update's fan-out may have come before the record)."""
        now = await self._plan_state(plan)
        if now is None:
            return False
        if version_of(now) != version_of(seen):
            await self._copies.write(self.redis, rk, copy, plan, now)
        return True

    async def _undo_create(
        self, key_id: str, plan: str, rk: str | None = None, copy: str | None = None
    ) -> None:
        if rk is not None and copy is not None:
            await self.redis.delete(rk)
            await self.redis.delete(copy)
        await self.redis.delete(id_key(key_id))
        await self._srem(self.redis, [KEYS_SET], [key_id])
        if plan:
            await self._srem(self.redis, [plan_keys_key(plan)], [key_id])

    async def _record(self, key_id: str) -> str:
        """The key's record name; a record of the untagged layout is moved there first (never on
        a Cluster: the old layout never ran there, migration.py)."""
        hashed = await self.redis.get(id_key(key_id))
        if hashed is None:
            raise NotFound(f"no such key: {key_id}")
        h = str(hashed.decode() if isinstance(hashed, bytes) else hashed)
        if self._cluster is None:
            self._cluster = await on_cluster(self.redis)
        if not self._cluster:
            await migrate_key(self.redis, key_id, h, self.charge_ttl_seconds)
        return record_key(key_id, h)

    async def _refill(self, plan: str) -> Refill | None:
        raw = await self.redis.hgetall(plan_key(plan))
        return Refill.from_fields({k.decode(): v.decode() for k, v in raw.items()})

    async def get_key(self, key_id: str) -> KeyInfo:
        rec = await self.redis.hgetall(await self._record(key_id))
        if not rec:
            raise NotFound(f"no such key: {key_id}")
        info = _info(rec)
        refill = await self._refill(info.plan) if info.plan else None
        if refill is not None:
            at = rec.get(REFILLED_AT.encode())
            due = due_at(refill, int(at) if at else None, int(time.time() * 1000))
            info.next_refill = due / 1000
        return info

    async def list_keys(self) -> list[KeyInfo]:
        out = []
        for key_id in await self.key_ids():
            try:
                out.append(await self.get_key(key_id))
            except NotFound:
                continue
        return out

    async def revoke(self, key_id: str) -> KeyInfo:
        await self.redis.hset(await self._record(key_id), "revoked", 1)
        await self._index_expiry(key_id, 0)  # a revoked key is not warned of its expiry
        return await self.get_key(key_id)

    # --- the expiry index (the notifier's key.expiring sweeper reads it; issue 13)
    async def _index_expiry(self, key_id: str, expires_ms: int) -> None:
        if expires_ms:
            await self.redis.zadd(EXPIRIES, {key_id: expires_ms})
        else:
            await self.redis.zrem(EXPIRIES, key_id)

    async def backfill_expiries(self, now_ms: int) -> int:
        """Index the live keys that expire after ``now_ms`` (keys created before the index
        existed); returns how many. SSCAN in pages: bounded work per round trip, and idempotent,
        so every auth replica may run it at start-up (the sweeper checks each entry against the
        key's record, so an entry a concurrent patch made stale is harmless)."""
        added = 0
        async for page in keyindex.pages(self.redis, KEYS_SET, BACKFILL_PAGE):
            async with self.redis.pipeline(transaction=False) as pipe:
                for key_id, h in page:
                    pipe.hmget(record_key(key_id, h or ""), "expires_at", "revoked")
                recs = await pipe.execute()
            live = {
                key_id: int(ex)
                for (key_id, _), (ex, rev) in zip(page, recs, strict=True)
                if ex is not None and int(ex) > now_ms and rev != b"1"
            }
            if live:
                added += await self.redis.zadd(EXPIRIES, live)
        return added

    async def patch_key(self, key_id: str, patch: KeyPatch) -> KeyInfo:
        """A change of the key's fields; a new plan in the same order as create_key (member set,
        record, check), undone to the fields of before when the check finds the plan gone."""
        rk = await self._record(key_id)
        copy = plan_copy_key(key_id)
        fields: dict[str, Any] = {}
        if patch.name is not None:
            fields["name"] = patch.name
        if patch.expires_at is not None:
            fields["expires_at"] = _ms(patch.expires_at)
        if patch.webhook_url is not None:  # "" clears the webhook and its secret
            fields["webhook_url"] = patch.webhook_url
            fields["webhook_secret"] = patch.webhook_secret or ""
        if patch.customer is not None:
            fields["customer"] = patch.customer
        plan = patch.plan
        old = (await self.redis.hget(rk, "plan") or b"").decode()
        seen: dict[bytes, bytes] = {}
        if plan is not None:
            if plan:
                await self._sadd(self.redis, [plan_keys_key(plan)], [key_id])
                state = await self._plan_state(plan)
                if state is None:
                    if old != plan:
                        await self._srem(self.redis, [plan_keys_key(plan)], [key_id])
                    raise NotFound(f"no such plan: {plan}")
                seen = state
            fields["plan"] = plan
            if old != plan:
                fields.update(_refill_start(seen))
        if fields:
            before = dict(zip(fields, await self.redis.hmget(rk, *fields), strict=True))
            extra = [] if plan is None else _copy_args(plan, seen)
            done = await self._write_record(
                self.redis, [rk, copy], ["1", len(fields), *_pairs(fields), *extra]
            )
            if done == -2:
                if plan and old != plan:
                    await self._srem(self.redis, [plan_keys_key(plan)], [key_id])
                raise NotFound(f"no such key: {key_id}")
            if plan is not None and old and old != plan:
                await self._srem(self.redis, [plan_keys_key(old)], [key_id])
            if plan and not await self._confirm(rk, copy, plan, seen):
                await self._undo_patch(key_id, rk, copy, plan, old, before)
                raise NotFound(f"no such plan: {plan}")
        info = await self.get_key(key_id)
        if patch.expires_at is not None:
            live = info.expires_at is not None and not info.revoked
            await self._index_expiry(key_id, _ms(info.expires_at) if live else 0)
        return info

    async def _undo_patch(
        self,
        key_id: str,
        rk: str,
        copy: str,
        plan: str,
        old: str,
        before: dict[str, bytes | None],
    ) -> None:
        """Put back the fields a patch wrote and the key's old plan (its copy and membership).
        Only a deletion of that old plan at this very moment too could still miss the key (its
        walk read the record while it named the new plan): README "Known gaps"."""
        if old:
            await self._sadd(self.redis, [plan_keys_key(old)], [key_id])
        back = {k: v for k, v in before.items() if v is not None}
        gone = [k for k, v in before.items() if v is None]
        if gone:
            await self.redis.hdel(rk, *gone)
        old_fields = (await self._plan_state(old) or {}) if old else {}
        args = ["1", len(back), *_pairs(back), *_copy_args(old, old_fields)]
        await self._write_record(self.redis, [rk, copy], args)
        if old != plan:
            await self._srem(self.redis, [plan_keys_key(plan)], [key_id])

    async def change_credits(self, key_id: str, add: int | None, set_to: int | None) -> KeyInfo:
        if (add is None) == (set_to is None):
            raise Invalid("give exactly one of add or set")
        rk = await self._record(key_id)
        if set_to is not None:
            await self.redis.hset(rk, "credits", set_to)
        else:
            assert add is not None
            status = await self._add_credits(self.redis, [rk], [add, MAX_CREDITS])
            if status == -3:
                raise NotFound(f"no such key: {key_id}")
            if status == -1:
                raise Invalid("add: the balance cannot go below zero")
            if status == -2:
                raise Invalid(f"add: the balance cannot go above {MAX_CREDITS}")
        return await self.get_key(key_id)

    # --- usage
    async def key_ids(self) -> list[str]:
        return sorted(m.decode() for m in await self.redis.smembers(KEYS_SET))

    async def usage(self, key_id: str, hours: list[int]) -> list[dict[bytes, bytes]]:
        """The key's usage bucket of each hour (empty where it had none), in one pipeline."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for hour in hours:
                pipe.hgetall(usage_key(key_id, hour))
            found: list[dict[bytes, bytes]] = await pipe.execute()
        return found

    # --- plans
    async def put_plan(self, plan: Plan) -> Plan:
        """The plan replaced in one step on its own key (a deletion under way gives up: its mark
        goes with the old fields), then named in the plans set, then copied to its keys."""
        mapping: dict[str, Any] = {"rate": plan.rate, "burst": plan.burst}
        mapping.update({f"cost:{p.rstrip('/') or '/'}": c for p, c in plan.costs.items()})
        if plan.refill is not None:
            mapping.update(plan.refill.to_ledger().to_fields())
        await self._put_plan(self.redis, [plan_key(plan.name)], _pairs(mapping))
        await self._sadd(self.redis, [PLANS_SET], [plan.name])
        await self._fan_out(plan.name)
        return plan

    async def _fan_out(self, name: str) -> int:
        """Rewrite the copies of the keys on plan ``name`` from it (read once, plancopy.py);
        returns how many hold it. A key moved off the plan meanwhile is left alone (the script
        reads the key's own plan), and a copy of a newer version is kept, so neither a
        concurrent patch nor a later update's fan-out is undone."""
        fields = await self.redis.hgetall(plan_key(name))
        done = 0
        async for page in keyindex.pages(self.redis, plan_keys_key(name), BACKFILL_PAGE):
            steps = [
                self._copies.write(self.redis, record_key(i, h), plan_copy_key(i), name, fields)
                for i, h in page
                if h is not None
            ]
            done += sum(1 for n in await asyncio.gather(*steps) if n == 1)
        return done

    async def get_plan(self, name: str) -> Plan:
        rec = await self.redis.hgetall(plan_key(name))
        if not rec:
            raise NotFound(f"no such plan: {name}")
        d = {k.decode(): v.decode() for k, v in rec.items()}
        costs = {k[5:]: int(v) for k, v in d.items() if k.startswith("cost:")}
        refill = Refill.from_fields(d)
        return Plan(
            name=name,
            rate=float(d.get("rate", 0)),
            burst=int(d.get("burst", 1)),
            costs=costs,
            refill=PlanRefill.from_ledger(refill) if refill is not None else None,
        )

    async def list_plans(self) -> list[Plan]:
        """The plans of the plans set; one deleted meanwhile is left out (a deletion drops the
        plan before its name, put_plan writes the plan before the name)."""
        out = []
        for name in sorted(m.decode() for m in await self.redis.smembers(PLANS_SET)):
            try:
                out.append(await self.get_plan(name))
            except NotFound:
                continue
        return out

    async def delete_plan(self, name: str) -> None:
        """Delete a plan no live (unrevoked) key uses: a key whose plan is gone would be served
        without limits. Without one script over every key, the order keeps that: the plan is
        marked first (create and patch refuse a marked plan, create_key says why that closes
        the race), then every key's record is read, in either layout (a key not moved yet is in
        no member set), and the plan goes only if none uses it and the mark is still this
        deletion's (a put_plan meanwhile replaced it: the deletion gives up with 409). Then the
        plans set, and the copies of its revoked keys with their membership."""
        pk, token = plan_key(name), secrets.token_hex(8)
        marked = await self._mark_deleting(self.redis, [pk], [token, DELETE_MARK_MS, "0"])
        if marked == 0:
            await self._srem(self.redis, [PLANS_SET], [name])
            raise NotFound(f"no such plan: {name}")
        if marked == -2:
            raise Conflict(f"plan {name} is being deleted by another request; try again")
        in_use = await self._users(name, pk, token)
        if in_use:
            await self._end_deleting(self.redis, [pk], [token, "0"])
            noun = "key uses" if in_use == 1 else "keys use"
            raise Conflict(
                f"plan {name} is in use: {in_use} {noun} it; move them to another plan "
                "or revoke them first"
            )
        if not await self._end_deleting(self.redis, [pk], [token, "1"]):
            raise Conflict(f"plan {name} changed while it was being deleted; try again")
        await self._srem(self.redis, [PLANS_SET], [name])
        async for page in keyindex.pages(self.redis, plan_keys_key(name), BACKFILL_PAGE):
            for key_id, _ in page:
                await self._drop_copy(self.redis, [plan_copy_key(key_id)], [name])
            if page:
                await self._srem(self.redis, [plan_keys_key(name)], [i for i, _ in page])

    async def _users(self, name: str, pk: str, token: str) -> int:
        """How many live keys name plan ``name``, the deletion's mark renewed every page."""
        n = 0
        async for page in keyindex.pages(self.redis, KEYS_SET, BACKFILL_PAGE):
            async with self.redis.pipeline(transaction=False) as pipe:
                for key_id, h in page:
                    pipe.hmget(record_key(key_id, h or ""), "plan", "revoked")
                    pipe.hmget(legacy_record_key(h or ""), "plan", "revoked")
                both = await pipe.execute()
            recs = [
                new if new[0] is not None else old
                for new, old in zip(both[::2], both[1::2], strict=True)
            ]
            n += sum(
                1
                for (_, h), (plan, rev) in zip(page, recs, strict=True)
                if h is not None and plan == name.encode() and rev != b"1"
            )
            await self._mark_deleting(self.redis, [pk], [token, DELETE_MARK_MS, "1"])
        return n


def _ms(at: float | None) -> int:
    """An expiry as the ledger stores it: Unix milliseconds, 0 = never."""
    return int((at or 0) * 1000)


def _pairs(fields: dict[str, Any]) -> list[Any]:
    return [x for kv in fields.items() for x in kv]


def _refill_start(plan: dict[bytes, bytes]) -> dict[str, int]:
    """The refill field of a key new to the plan read as ``plan`` (pure but for the clock): its
    current period, so the first refill comes at the next boundary (as authorize.lua does for a
    key without one). A key moved to another plan starts over the same way: a move is no
    refill."""
    refill = Refill.from_fields({k.decode(): v.decode() for k, v in plan.items()})
    if refill is None:
        return {}
    return {REFILLED_AT: period_start(refill, int(time.time() * 1000))}


def _copy_args(plan: str, fields: dict[bytes, bytes]) -> list[Any]:
    """RECORD's tail that writes the copy: the plan as read (none: ``plan`` is '')."""
    return copy_args(plan, fields) if plan else ["", 0]


def _record_args(fields: dict[str, Any], plan: str, seen: dict[bytes, bytes]) -> list[Any]:
    return [len(fields), *_pairs(fields), *_copy_args(plan, seen)]


def _info(rec: dict[bytes, bytes]) -> KeyInfo:
    d = {k.decode(): v.decode() for k, v in rec.items()}
    expires = int(d.get("expires_at", "0") or 0)
    return KeyInfo(
        id=d["id"],
        prefix=display_prefix(d["id"]),
        name=d.get("name", ""),
        plan=d.get("plan", ""),
        credits=int(d.get("credits", 0)),
        revoked=d.get("revoked") == "1",
        expires_at=expires / 1000 if expires else None,
        created_at=float(d.get("created_at", 0)),
        webhook_url=d.get("webhook_url", ""),
        customer=d.get("customer", ""),
    )
