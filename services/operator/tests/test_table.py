"""Publishing the route table on a Redis Cluster (issue 13): the table and its digest share a
slot, so the one PUBLISH script runs there."""

from __future__ import annotations

import redis.asyncio as aioredis

from tollgate_common.contracts.routes import TABLE_KEY
from tollgate_operator.table import DIGEST_KEY, TableSink


async def test_the_table_publishes_on_a_cluster(cluster_redis_url: str) -> None:
    """First publish writes (changed), the same table again does not; both names on one slot."""
    client = aioredis.Redis.from_url(cluster_redis_url)
    try:
        sink = TableSink(client)
        version, changed = await sink.publish([])
        assert changed
        assert await sink.publish([]) == (version, False)
        slots = {
            await client.execute_command("CLUSTER", "KEYSLOT", k) for k in (TABLE_KEY, DIGEST_KEY)
        }
        assert len(slots) == 1
    finally:
        await client.aclose()
