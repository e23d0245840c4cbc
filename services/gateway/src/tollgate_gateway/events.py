"""Appending events to the Redis stream off the response path.

A bounded queue and one writer task: a response never waits for Redis, and a Redis outage drops
events (counted in a metric) instead of growing memory or slowing requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.exceptions import RedisError

from tollgate_common.contracts.events import Event, EventType, Severity, publish
from tollgate_common.redis.client import describe
from tollgate_common.redis.commands import Client
from tollgate_common.tracing import in_trace
from tollgate_gateway.metrics import Metrics

log = logging.getLogger(__name__)


class EventSink:
    def __init__(self, redis: Client, metrics: Metrics, *, maxsize: int = 1000) -> None:
        self.redis = redis
        self.metrics = metrics
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.failing: set[str] = set()  # routes whose last outcome was a failure
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):  # give queued events a moment to go out
            await asyncio.wait_for(self.queue.join(), 2.0)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def emit(self, event: Event) -> None:
        """Queue ``event`` with the trace context of the request raising it (the notifier links
        its delivery to that trace); the sending task runs outside any request."""
        try:
            self.queue.put_nowait(in_trace(event))
        except asyncio.QueueFull:
            self.metrics.events_dropped.inc()

    def route_failed(self, route: str, status: int, detail: str) -> None:
        self.failing.add(route)
        self.emit(
            Event(
                type=EventType.UPSTREAM_FAILED,
                severity=Severity.CRITICAL,
                route=route,
                message=f"every upstream of {route} failed ({status}): {detail}",
                source="gateway",
                attributes={"status": str(status)},
            )
        )

    def route_served(self, route: str) -> None:
        if route in self.failing:
            self.failing.discard(route)
            self.emit(
                Event(
                    type=EventType.ROUTE_RECOVERED,
                    severity=Severity.INFO,
                    route=route,
                    message=f"{route} serves again",
                    source="gateway",
                )
            )

    async def _run(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                await publish(self.redis, event)
            except (TimeoutError, RedisError, OSError) as exc:
                self.metrics.events_dropped.inc()
                log.warning("event not appended (%s): %s", event.type, describe(exc))
            finally:
                self.queue.task_done()
