"""Publishing the route table to Redis: the only code of the operator that writes outside it.

One Lua step compares the digest of the new routes with the table in force and, only if they
differ, writes them under a new version and publishes that version on the change channel, so a
republish of the same content (resume, drift check, a second start) is a no-op. Versions are
``max(previous + 1, Redis time in ms)``: they keep growing across operator restarts and even
after Redis lost its data, because gateways ignore any version not newer than the one they hold.
"""

from __future__ import annotations

import hashlib
import json

from tollgate_common.contracts.routes import TABLE_CHANNEL, TABLE_KEY, Route
from tollgate_common.redis.commands import Client

# The table's name in braces is the digest's hash tag: an untagged name hashes whole, so the digest
# is on the table's Redis Cluster slot and PUBLISH (both KEYS) runs there without CROSSSLOT
# (issue 13). A digest left under the old name is ignored: the next publish writes the table
# once more and the digest here.
DIGEST_KEY = "{" + TABLE_KEY + "}:digest"

PUBLISH = """
local cur = redis.call('GET', KEYS[1])
if cur and redis.call('GET', KEYS[2]) == ARGV[2] then
  return {tonumber(cjson.decode(cur)['version']), 0}
end
local t = redis.call('TIME')
local v = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if cur then
  local old = tonumber(cjson.decode(cur)['version'])
  if old and old >= v then v = old + 1 end
end
local doc = '{"version":' .. string.format('%d', v) .. ',"routes":' .. ARGV[3] .. '}'
redis.call('SET', KEYS[1], doc)
redis.call('SET', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[1], v)
return {v, 1}
"""


def routes_json(routes: list[Route]) -> str:
    """Canonical JSON of the routes (sorted keys, no spaces)."""
    docs = [r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in routes]
    return json.dumps(docs, sort_keys=True, separators=(",", ":"))


class TableSink:
    def __init__(self, redis: Client) -> None:
        self.redis = redis
        self._script = redis.register_script(PUBLISH)
        self.version = 0

    async def publish(self, routes: list[Route]) -> tuple[int, bool]:
        """Publish; returns (version in force, whether this call changed it)."""
        doc = routes_json(routes)
        digest = hashlib.sha256(doc.encode()).hexdigest()
        version, changed = await self._script(
            keys=[TABLE_KEY, DIGEST_KEY], args=[TABLE_CHANNEL, digest, doc]
        )
        self.version = int(version)
        return self.version, bool(changed)
