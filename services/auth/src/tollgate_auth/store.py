"""Keys, plans and credits in Redis: the only module of the auth service that talks to Redis.

The hot path (authorize, refund) is tollgate_common.credits.Ledger: one EVALSHA each. The admin
calls here are not on the hot path.
"""

from __future__ import annotations

import time
from typing import Any

from tollgate_auth.errors import Invalid, NotFound
from tollgate_auth.keys import display_prefix, key_hash, new_key
from tollgate_auth.models import KeyCreate, KeyCreated, KeyInfo, KeyPatch, Plan
from tollgate_common.credits import Ledger, Outcome, P, record_key

KEYS_SET = P + "keys"
PLANS_SET = P + "plans"


def id_key(key_id: str) -> str:
    return f"{P}id:{key_id}"


def plan_key(name: str) -> str:
    return f"{P}plan:{name}"


class Store:
    def __init__(self, redis: Any, pepper: str, hot: Any = None) -> None:
        self.redis = redis
        self.pepper = pepper
        # ``hot``: the client for the per-request ledger calls (the lean one in production).
        self.ledger = Ledger(hot if hot is not None else redis, pepper)

    # --- hot path
    async def authorize(
        self,
        raw_key: str,
        path: str,
        cost: int,
        client: str,
        *,
        charge_ttl: int,
        low_threshold: int,
        invalid_window: int,
        charge_id: str | None = None,
    ) -> Outcome:
        return await self.ledger.authorize(
            raw_key,
            path,
            cost,
            client,
            charge_ttl=charge_ttl,
            low_threshold=low_threshold,
            invalid_window=invalid_window,
            charge_id=charge_id,
        )

    async def refund(self, charge_id: str, tombstone_ttl: int = 3600) -> int:
        return await self.ledger.refund(charge_id, tombstone_ttl)

    # --- keys
    async def create_key(self, req: KeyCreate) -> KeyCreated:
        if req.plan and not await self.redis.exists(plan_key(req.plan)):
            raise NotFound(f"no such plan: {req.plan}")
        key_id, raw = new_key()
        hashed = key_hash(raw, self.pepper)
        now = time.time()
        fields = {
            "id": key_id,
            "name": req.name,
            "plan": req.plan,
            "credits": req.credits,
            "revoked": 0,
            "expires_at": int((req.expires_at or 0) * 1000),
            "created_at": now,
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(record_key(hashed), mapping=fields)
            pipe.set(id_key(key_id), hashed)
            pipe.sadd(KEYS_SET, key_id)
            await pipe.execute()
        info = await self.get_key(key_id)
        return KeyCreated(**info.model_dump(), key=raw)

    async def _hashed(self, key_id: str) -> str:
        hashed = await self.redis.get(id_key(key_id))
        if hashed is None:
            raise NotFound(f"no such key: {key_id}")
        return str(hashed.decode() if isinstance(hashed, bytes) else hashed)

    async def get_key(self, key_id: str) -> KeyInfo:
        rec = await self.redis.hgetall(record_key(await self._hashed(key_id)))
        if not rec:
            raise NotFound(f"no such key: {key_id}")
        return _info(rec)

    async def list_keys(self) -> list[KeyInfo]:
        ids = sorted(m.decode() for m in await self.redis.smembers(KEYS_SET))
        out = []
        for key_id in ids:
            try:
                out.append(await self.get_key(key_id))
            except NotFound:
                continue
        return out

    async def revoke(self, key_id: str) -> KeyInfo:
        await self.redis.hset(record_key(await self._hashed(key_id)), "revoked", 1)
        return await self.get_key(key_id)

    async def patch_key(self, key_id: str, patch: KeyPatch) -> KeyInfo:
        rk = record_key(await self._hashed(key_id))
        fields: dict[str, Any] = {}
        if patch.name is not None:
            fields["name"] = patch.name
        if patch.plan is not None:
            if patch.plan and not await self.redis.exists(plan_key(patch.plan)):
                raise NotFound(f"no such plan: {patch.plan}")
            fields["plan"] = patch.plan
        if patch.expires_at is not None:
            fields["expires_at"] = int(patch.expires_at * 1000)
        if fields:
            await self.redis.hset(rk, mapping=fields)
        return await self.get_key(key_id)

    async def change_credits(self, key_id: str, add: int | None, set_to: int | None) -> KeyInfo:
        if (add is None) == (set_to is None):
            raise Invalid("give exactly one of add or set")
        rk = record_key(await self._hashed(key_id))
        if set_to is not None:
            await self.redis.hset(rk, "credits", set_to)
        else:
            assert add is not None
            left = await self.redis.hincrby(rk, "credits", add)
            if left < 0:
                await self.redis.hincrby(rk, "credits", -add)
                raise Invalid("credits cannot go below zero")
        return await self.get_key(key_id)

    # --- plans
    async def put_plan(self, plan: Plan) -> Plan:
        pk = plan_key(plan.name)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(pk)
            mapping: dict[str, Any] = {"rate": plan.rate, "burst": plan.burst}
            mapping.update({f"cost:{p.rstrip('/') or '/'}": c for p, c in plan.costs.items()})
            pipe.hset(pk, mapping=mapping)
            pipe.sadd(PLANS_SET, plan.name)
            await pipe.execute()
        return plan

    async def get_plan(self, name: str) -> Plan:
        rec = await self.redis.hgetall(plan_key(name))
        if not rec:
            raise NotFound(f"no such plan: {name}")
        d = {k.decode(): v.decode() for k, v in rec.items()}
        costs = {k[5:]: int(v) for k, v in d.items() if k.startswith("cost:")}
        return Plan(
            name=name, rate=float(d.get("rate", 0)), burst=int(d.get("burst", 1)), costs=costs
        )

    async def list_plans(self) -> list[Plan]:
        names = sorted(m.decode() for m in await self.redis.smembers(PLANS_SET))
        return [await self.get_plan(n) for n in names]

    async def delete_plan(self, name: str) -> None:
        if not await self.redis.delete(plan_key(name)):
            raise NotFound(f"no such plan: {name}")
        await self.redis.srem(PLANS_SET, name)


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
    )
