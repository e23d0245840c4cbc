"""The controller against a real redis-server: what a sync leaves in the operator's metrics."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from tollgate_operator.api import Backend
from tollgate_operator.controller import Controller
from tollgate_operator.metrics import Metrics
from tollgate_operator.settings import OperatorSettings
from tollgate_operator.table import TableSink


async def test_a_sync_stamps_the_table_synced_time(redis_url: str) -> None:
    """Each sync, a write or a no-op republish, sets tollgate_operator_table_synced_timestamp."""
    client = aioredis.Redis.from_url(redis_url)
    metrics = Metrics()
    controller = Controller(OperatorSettings(), TableSink(client), metrics)
    b = Backend("ns", "eod", "", 1, {"pathPrefix": "/eod", "endpoints": [{"url": "http://a:1"}]})
    try:
        before = time.time()
        await controller.sync([b], "create")
        first = metrics.registry.get_sample_value(
            "tollgate_operator_table_synced_timestamp_seconds"
        )
        assert first is not None
        assert first >= before
        await controller.sync([b], "drift")  # unchanged: not written, still confirmed
        again = metrics.registry.get_sample_value(
            "tollgate_operator_table_synced_timestamp_seconds"
        )
        assert again is not None
        assert again >= first
        assert metrics.registry.get_sample_value("tollgate_operator_publishes_total") == 1
    finally:
        await client.aclose()
