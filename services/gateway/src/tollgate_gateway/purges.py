"""Purges of the response cache reaching this gateway's in-process tier (issue 13).

Auth's admin API deletes the entries from Redis and publishes the purge on PURGE_CHANNEL
(tollgate_common/contracts/cachekeys.py); every gateway drops the same entries from its tier
here. The subscription reconnects on its own; a purge published while this gateway was cut off
is lost to it, so on each resubscription the whole tier goes (it refills from Redis on the next
misses).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pydantic import ValidationError
from redis.exceptions import RedisError

from tollgate_common.contracts.cachekeys import PURGE_CHANNEL, Purge
from tollgate_common.redis.client import describe
from tollgate_common.redis.commands import Client
from tollgate_gateway.cache import LocalTier

log = logging.getLogger(__name__)


class PurgeListener:
    def __init__(self, redis: Client, local: LocalTier, wait_seconds: float = 1.0) -> None:
        self.redis = redis
        self.local = local
        self.wait_seconds = wait_seconds  # below the pool's socket timeout
        self.subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Checked on every turn: on Python 3.11 a cancel that lands as get_message()'s own
        # timeout fires can come out as that TimeoutError, and a loop that only waited for the
        # CancelledError would go on for ever (a gateway shutdown hung on it under load).
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def apply(self, data: bytes) -> None:
        try:
            p = Purge.loads(data)
        except ValidationError as exc:
            log.warning("ignored a malformed cache purge: %s", exc)
            return
        n = self.local.purge(p.start)
        log.info("cache purge of %s%s: %d local entries", p.route, p.prefix, n)

    async def _run(self) -> None:
        backoff = 0.1
        first = True
        while not self._stopping:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(PURGE_CHANNEL)
                if not first:  # purges published while we were away are unknown: drop it all
                    self.local.clear()
                first = False
                self.subscribed.set()
                backoff = 0.1
                while not self._stopping:
                    message = await pubsub.get_message(timeout=self.wait_seconds)
                    if message is not None and message.get("type") == "message":
                        self.apply(message["data"])
            # Any error, not only Redis's: a listener that died would never hear a purge again.
            except Exception as exc:
                if self._stopping:
                    return
                if self.subscribed.is_set():
                    log.warning("cache purge channel lost, resubscribing: %s", describe(exc))
                self.subscribed.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
