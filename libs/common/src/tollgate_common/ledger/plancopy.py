"""A key's copy of its plan: the Lua function that writes it, for the scripts that need it.

The authorize step runs on the API key's slot (layout.py), so it cannot read the plan
(``layout.plan_key``, another slot); it reads the key's copy (``layout.plan_copy_key``). The copy
is written whenever a key gets a plan (auth's store: create, patch), whenever a plan changes (the
store fans the change out over the plan's member set, ``layout.plan_keys_key``) and by the layout
migration; it goes when the plan goes. One Lua function (plancopy.lua) does it every time.
"""

from __future__ import annotations

from importlib.resources import files

from tollgate_common.redis.client import LuaScript
from tollgate_common.redis.commands import Scripts

COPY_PLAN_LUA = (files("tollgate_common.ledger") / "plancopy.lua").read_text()

# KEYS: the key's record, its plan copy. ARGV: the key id. Returns what copy_plan returns.
SYNC = COPY_PLAN_LUA + "\nreturn copy_plan(KEYS[1], KEYS[2], ARGV[1])\n"


def with_copy_plan(body: str) -> LuaScript:
    """A script whose body may call ``copy_plan(record, copy, key_id)``."""
    return LuaScript(COPY_PLAN_LUA + "\n" + body)


class PlanCopies:
    """Rewrites keys' plan copies from their plans, one small script per key."""

    def __init__(self) -> None:
        self._sync = LuaScript(SYNC)

    async def sync(self, redis: Scripts, record: str, copy: str, key_id: str) -> int:
        n: int = await self._sync(redis, [record, copy], [key_id])
        return n
