"""A key's copy of its plan: how it is written, on the key's slot only.

The authorize step runs on the API key's slot (layout.py), so it cannot read the plan
(``layout.plan_key``, another slot); it reads the key's copy (``layout.plan_copy_key``). The copy
is written whenever a key gets a plan (auth's store: create, patch), whenever a plan changes (the
store fans the change out over the plan's member set, ``layout.plan_keys_key``) and by the layout
migration; it goes when the plan goes.

Redis Cluster (issue 13): the plan and the copy are on different slots, so no script reads one
and writes the other. The caller reads the plan (one HGETALL), then ``write`` puts its fields in
the copy with one script on the key's slot. Two writers racing (a plan update's fan-out and a
create that read the plan before the update) converge by the plan's ``version`` (auth's store
raises it with every update, from the server's clock): the copy never goes back to an older
version, and equal versions are the same fields. The script also reads the key's own plan, so a
key moved to another plan meanwhile keeps its copy.

plancopy.lua is the same step with the plan read inside, for migrate.lua alone (old data only
lives on one Redis, where a script may span slots).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files
from typing import Any

from tollgate_common.ledger.layout import plan_key
from tollgate_common.redis.client import LuaScript
from tollgate_common.redis.commands import Client, Scripts

COPY_PLAN_LUA = (files("tollgate_common.ledger") / "plancopy.lua").read_text()
VERSION = "version"
"""The plan's field that orders its updates (absent on plans written before it: 0)."""
DELETING = "deleting"
"""The plan's field a deletion in progress sets (auth's store): never copied to keys."""

# KEYS: the key's record, its copy. ARGV: the plan read, its version, its field/value pairs
# (none: the plan does not exist). Returns -1 when the record names another plan (nothing
# written), 1 when the copy holds the plan, 0 when it holds none.
WRITE = """
local plan = redis.call('HGET', KEYS[1], 'plan') or ''
if plan ~= ARGV[1] then return -1 end
if plan ~= '' and #ARGV > 2 then
  local cur = redis.call('HMGET', KEYS[2], 'name', 'version')
  if cur[1] == plan and (tonumber(cur[2] or '0') or 0) > (tonumber(ARGV[2]) or 0) then return 1 end
end
redis.call('DEL', KEYS[2])
if plan == '' or #ARGV < 3 then return 0 end
redis.call('HSET', KEYS[2], 'name', plan, 'version', ARGV[2], unpack(ARGV, 3))
return 1
"""


def with_copy_plan(body: str) -> LuaScript:
    """A script whose body may call ``copy_plan(record, copy, key_id)`` (one Redis only)."""
    return LuaScript(COPY_PLAN_LUA + "\n" + body)


def version_of(fields: Mapping[bytes, bytes]) -> int:
    """A plan's version as read by HGETALL (pure)."""
    raw = fields.get(VERSION.encode())
    return int(raw) if raw else 0


def copy_args(plan: str, fields: Mapping[bytes, bytes]) -> list[Any]:
    """WRITE's ARGV for ``plan`` read as ``fields`` (pure): the marks of the store stay out."""
    skip = {VERSION.encode(), DELETING.encode()}
    pairs = [x for k, v in fields.items() if k not in skip for x in (k, v)]
    return [plan, version_of(fields), *pairs]


class PlanCopies:
    """Writes keys' plan copies from their plans, one small script on the key's slot each."""

    def __init__(self) -> None:
        self._write = LuaScript(WRITE)

    async def write(
        self, redis: Scripts, record: str, copy: str, plan: str, fields: Mapping[bytes, bytes]
    ) -> int:
        """Put ``plan`` as read (``fields``; empty: it does not exist) in the copy, if the record
        still names it and the copy holds no newer version; returns WRITE's answer."""
        n: int = await self._write(redis, [record, copy], copy_args(plan, fields))
        return n

    async def sync(self, redis: Client, record: str, copy: str) -> int:
        """Make the copy what the record's plan says now (three single-slot calls); returns 1
        when it holds a plan, else 0."""
        raw = await redis.hget(record, "plan")
        plan = raw.decode() if isinstance(raw, bytes) else (raw or "")
        fields = await redis.hgetall(plan_key(plan)) if plan else {}
        return max(await self.write(redis, record, copy, plan, fields), 0)
