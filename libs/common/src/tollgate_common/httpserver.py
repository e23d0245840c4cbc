"""The HTTP/1.1 server of the per-request services (gateway, auth): asyncio protocols over
httptools' request parser (llhttp, the parser uvicorn uses), handing each request to a handler as
an ``Incoming`` and writing its ``Reply`` with one ``write()``.

Why a server of our own rather than uvicorn: ASGI's per-request dicts, the receive/send
round trips and uvicorn's response-cycle object cost ~10 µs of CPU a request, a sixth of a cache
miss and a third of a hit (``python -m bench --variants`` keeps "uvicorn" and "stock uvicorn" rows
next to this server; bench/results/reference-20261126.json: +20% req/s on a miss, +48% on a hit
on the 2-core VM we measure on; granian's ASGI measured no better than uvicorn). Everything
a front server owes its clients is here and tested in tests/test_httpserver.py: keep-alive,
pipelined requests answered in order, ``Connection: close`` and HTTP/1.0, chunked request
bodies, ``Expect: 100-continue``, limits on the request head (431) and body (413), malformed
requests (400), an idle keep-alive timeout and a slow-header timeout, write back-pressure, a
client disconnect cancelling its request's upstream work, a Date header, and a graceful drain
on SIGTERM. The admin endpoints (FastAPI) are reached through a small ASGI bridge
(asgibridge.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from email.utils import formatdate

from tollgate_common.exchange import Incoming, Reply
from tollgate_common.httpconnection import HttpConnection, Limits

log = logging.getLogger(__name__)

Handler = Callable[[Incoming], Awaitable[Reply | None]]
SWEEP_SECONDS = 1.0

__all__ = ["Handler", "HttpServer", "Limits"]


class HttpServer:
    """Listens, tracks connections, keeps the Date header and sweeps idle connections."""

    def __init__(self, handler: Handler, limits: Limits, *, access_log: bool = False) -> None:
        self.handler = handler
        self.limits = limits
        self.access_log = access_log
        self.loop = asyncio.get_running_loop()
        self.connections: set[HttpConnection] = set()
        self.date_header = b""
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._all_closed = asyncio.Event()
        self._sweep()

    async def listen(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        self._server = await self.loop.create_server(
            lambda: HttpConnection(self), host, port, backlog=2048, reuse_port=reuse_port
        )

    async def run(
        self,
        host: str,
        port: int,
        stop: Awaitable[None],
        *,
        grace_seconds: float,
        reuse_port: bool = False,
        on_listen: Callable[[int], None] | None = None,
    ) -> None:
        """Listen, serve until ``stop`` resolves, then drain (``shutdown``). ``on_listen`` gets
        the bound port (port 0 picks one)."""
        await self.listen(host, port, reuse_port=reuse_port)
        log.info("listening on %s:%d", host, self.port)
        if on_listen is not None:
            on_listen(self.port)
        try:
            await stop
        finally:
            await self.shutdown(grace_seconds)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def forget(self, conn: HttpConnection) -> None:
        self.connections.discard(conn)
        if not self.connections:
            self._all_closed.set()

    def _sweep(self) -> None:
        # One timer for every connection, not one per request: per-request timers are a
        # measurable share of a request on the proxy path.
        self.date_header = b"date: %s\r\n" % formatdate(usegmt=True).encode()
        now = self.loop.time()
        for conn in [c for c in self.connections if c.expired(now)]:
            conn.transport.close()
        self._sweeper = self.loop.call_later(SWEEP_SECONDS, self._sweep)

    async def shutdown(self, grace_seconds: float) -> None:
        """Stop accepting, let requests in progress finish (bounded), close every connection."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.drain()
        if self.connections:
            self._all_closed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), grace_seconds)
        for conn in list(self.connections):
            conn.transport.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
