"""Keys, plans and credits in Redis: the only module of the auth service that talks to Redis.

The hot path (authorize, refund) is tollgate_common.ledger.Ledger: one EVALSHA each, called by
the service directly. The admin calls here are not on the hot path. The writes that must not race
each other are small Lua scripts, atomic in Redis: a key is attached to a plan only while the plan
exists, a plan is deleted only while no live key uses it, and a balance changes only within
0..MAX_CREDITS. Unlike authorize.lua and refund.lua (one slot per API key, tollgate_common
.ledger.layout) they still touch keys of several slots (the key record with the global indexes and
plans): the admin path wants one Redis or a primary with replicas.

Plans: the authorize step reads a key's copy of its plan (ledger/plancopy.py), written here
whenever a key gets a plan (create, patch) and fanned out over the plan's member set whenever the
plan changes (``put_plan``: one small script per key on the plan, so an update of a plan with
100k keys is 100k script calls, in pipelined pages, on the admin path; the keys see the new plan
one by one within that time). Keys of the untagged layout move on first touch here
(ledger/migration.py) as they do in the ledger.
"""

from __future__ import annotations

import asyncio
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
from tollgate_common.ledger.apikeys import MAX_CREDITS
from tollgate_common.ledger.layout import (
    EXPIRIES,
    KEYS_SET,
    PLANS_SET,
    id_key,
    plan_copy_key,
    plan_key,
    plan_keys_key,
    record_key,
    usage_key,
)
from tollgate_common.ledger.migration import migrate_key
from tollgate_common.ledger.plancopy import PlanCopies, with_copy_plan
from tollgate_common.ledger.refill import REFILLED_AT, Refill, due_at, period_start
from tollgate_common.redis.client import LuaScript
from tollgate_common.redis.commands import Client

# KEYS: record, plan, id key, keys set, plan copy. ARGV: plan ('' = none), key id, hash,
# field/value pairs. Returns 0 when the plan does not exist (nothing written), else 1.
CREATE_KEY = """
if ARGV[1] ~= '' and redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SADD', KEYS[4], ARGV[2])
copy_plan(KEYS[1], KEYS[5], ARGV[2])
return 1
"""

# KEYS: record, plan, plan copy. ARGV: plan to check ('' = none), key id, field/value pairs.
# Returns -1 when the record is gone, 0 when the plan does not exist, else 1.
PATCH_KEY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[1] ~= '' and redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
copy_plan(KEYS[1], KEYS[3], ARGV[2])
return 1
"""

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

# KEYS: plan, plans set, keys set, the plan's member set. ARGV: plan name, id-key prefix.
# Returns -1 when there is no such plan, else how many live (unrevoked) keys use it; the plan is
# deleted only when that is 0 (a key whose plan is gone would be served without limits), and with
# it the copies of its revoked keys and its member set. Every key is looked at, in either layout
# (a key not moved yet is in no member set); the names are layout.record_key's,
# layout.legacy_record_key's and layout.plan_copy_key's (tests/test_layout.py).
DELETE_PLAN = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  return -1
end
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local h = redis.call('GET', ARGV[2] .. id)
  if h then
    local rec = redis.call('HMGET', 'tollgate:auth:{' .. id .. '}:key:' .. h, 'plan', 'revoked')
    if not rec[1] then rec = redis.call('HMGET', 'tollgate:auth:key:' .. h, 'plan', 'revoked') end
    if rec[1] == ARGV[1] and rec[2] ~= '1' then n = n + 1 end
  end
end
if n == 0 then
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    local copy = 'tollgate:auth:{' .. id .. '}:plan'
    if redis.call('HGET', copy, 'name') == ARGV[1] then redis.call('DEL', copy) end
  end
  redis.call('DEL', KEYS[1], KEYS[4])
  redis.call('SREM', KEYS[2], ARGV[1])
end
return n
"""

BACKFILL_PAGE = 500


class Store:
    def __init__(self, redis: Client, pepper: str, charge_ttl_seconds: int = 3600) -> None:
        """``charge_ttl_seconds``: the ledger's (LedgerSettings; how long a moved record's
        pointer lives, ledger/migration.py)."""
        self.redis = redis
        self.pepper = pepper
        self.charge_ttl_seconds = charge_ttl_seconds
        self._create_key = with_copy_plan(CREATE_KEY)
        self._patch_key = with_copy_plan(PATCH_KEY)
        self._copies = PlanCopies()
        self._add_credits = LuaScript(ADD_CREDITS)
        self._delete_plan = LuaScript(DELETE_PLAN)

    # --- keys
    async def create_key(self, req: KeyCreate) -> KeyCreated:
        key_id, raw = new_key()
        hashed = key_hash(raw, self.pepper)
        fields = {
            "id": key_id,
            "name": req.name,
            "plan": req.plan,
            "credits": req.credits,
            "revoked": 0,
            "expires_at": _ms(req.expires_at),
            "created_at": time.time(),
            **await self._refill_start(req.plan),
        }
        rk = record_key(key_id, hashed)
        keys = [rk, plan_key(req.plan), id_key(key_id), KEYS_SET, plan_copy_key(key_id)]
        args = [req.plan, key_id, hashed, *_pairs(fields)]
        if not await self._create_key(self.redis, keys, args):
            raise NotFound(f"no such plan: {req.plan}")
        await self._index_expiry(key_id, _ms(req.expires_at))
        info = await self.get_key(key_id)
        return KeyCreated(**info.model_dump(), key=raw)

    async def _record(self, key_id: str) -> str:
        """The key's record name; a record of the untagged layout is moved there first."""
        hashed = await self.redis.get(id_key(key_id))
        if hashed is None:
            raise NotFound(f"no such key: {key_id}")
        h = str(hashed.decode() if isinstance(hashed, bytes) else hashed)
        await migrate_key(self.redis, key_id, h, self.charge_ttl_seconds)
        return record_key(key_id, h)

    async def _refill_start(self, plan: str) -> dict[str, int]:
        """The refill field of a key new to ``plan``: its current period, so the first refill
        comes at the next boundary (as authorize.lua does for a key without one). A key moved
        to another plan starts over the same way: a move is no refill."""
        refill = await self._refill(plan) if plan else None
        if refill is None:
            return {}
        return {REFILLED_AT: period_start(refill, int(time.time() * 1000))}

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
        added, cursor = 0, 0
        while True:
            cursor, ids = await self.redis.sscan(KEYS_SET, cursor, count=BACKFILL_PAGE)
            ids = [i.decode() for i in ids]
            async with self.redis.pipeline(transaction=False) as pipe:
                for key_id in ids:
                    pipe.get(id_key(key_id))
                hashes = await pipe.execute()
            async with self.redis.pipeline(transaction=False) as pipe:
                for key_id, h in zip(ids, hashes, strict=True):
                    rk = record_key(key_id, h.decode() if h else "")
                    pipe.hmget(rk, "expires_at", "revoked")
                recs = await pipe.execute()
            live = {
                key_id: int(ex)
                for key_id, (ex, rev) in zip(ids, recs, strict=True)
                if ex is not None and int(ex) > now_ms and rev != b"1"
            }
            if live:
                added += await self.redis.zadd(EXPIRIES, live)
            if int(cursor) == 0:
                return added

    async def patch_key(self, key_id: str, patch: KeyPatch) -> KeyInfo:
        rk = await self._record(key_id)
        fields: dict[str, Any] = {}
        if patch.name is not None:
            fields["name"] = patch.name
        if patch.plan is not None:
            fields["plan"] = patch.plan
            if (await self.redis.hget(rk, "plan") or b"").decode() != patch.plan:
                fields.update(await self._refill_start(patch.plan))
        if patch.expires_at is not None:
            fields["expires_at"] = _ms(patch.expires_at)
        if patch.webhook_url is not None:  # "" clears the webhook and its secret
            fields["webhook_url"] = patch.webhook_url
            fields["webhook_secret"] = patch.webhook_secret or ""
        if patch.customer is not None:
            fields["customer"] = patch.customer
        if fields:
            plan = patch.plan or ""
            keys = [rk, plan_key(plan), plan_copy_key(key_id)]
            done = await self._patch_key(self.redis, keys, [plan, key_id, *_pairs(fields)])
            if done == -1:
                raise NotFound(f"no such key: {key_id}")
            if done == 0:
                raise NotFound(f"no such plan: {plan}")
        info = await self.get_key(key_id)
        if patch.expires_at is not None:
            live = info.expires_at is not None and not info.revoked
            await self._index_expiry(key_id, _ms(info.expires_at) if live else 0)
        return info

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
        pk = plan_key(plan.name)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(pk)
            mapping: dict[str, Any] = {"rate": plan.rate, "burst": plan.burst}
            mapping.update({f"cost:{p.rstrip('/') or '/'}": c for p, c in plan.costs.items()})
            if plan.refill is not None:
                mapping.update(plan.refill.to_ledger().to_fields())
            pipe.hset(pk, mapping=mapping)
            pipe.sadd(PLANS_SET, plan.name)
            await pipe.execute()
        await self._fan_out(plan.name)
        return plan

    async def _fan_out(self, name: str) -> int:
        """Rewrite the copies of the keys on plan ``name`` from it (plancopy.lua); returns how
        many hold it. A key moved off the plan meanwhile is left alone (the script reads the
        key's own plan), so a concurrent patch never gets the wrong copy."""
        done, cursor = 0, 0
        while True:
            cursor, raw = await self.redis.sscan(plan_keys_key(name), cursor, count=BACKFILL_PAGE)
            ids = [i.decode() for i in raw]
            async with self.redis.pipeline(transaction=False) as pipe:
                for key_id in ids:
                    pipe.get(id_key(key_id))
                hashes = await pipe.execute()
            steps = [
                self._copies.sync(self.redis, record_key(i, h.decode()), plan_copy_key(i), i)
                for i, h in zip(ids, hashes, strict=True)
                if h is not None
            ]
            done += sum(await asyncio.gather(*steps))
            if int(cursor) == 0:
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
        names = sorted(m.decode() for m in await self.redis.smembers(PLANS_SET))
        return [await self.get_plan(n) for n in names]

    async def delete_plan(self, name: str) -> None:
        keys = [plan_key(name), PLANS_SET, KEYS_SET, plan_keys_key(name)]
        in_use = await self._delete_plan(self.redis, keys, [name, id_key("")])
        if in_use < 0:
            raise NotFound(f"no such plan: {name}")
        if in_use:
            noun = "key uses" if in_use == 1 else "keys use"
            raise Conflict(
                f"plan {name} is in use: {in_use} {noun} it; move them to another plan "
                "or revoke them first"
            )


def _ms(at: float | None) -> int:
    """An expiry as the ledger stores it: Unix milliseconds, 0 = never."""
    return int((at or 0) * 1000)


def _pairs(fields: dict[str, Any]) -> list[Any]:
    return [x for kv in fields.items() for x in kv]


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
