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
requests and targets (400; HTTP/0.9, a version but 1.0/1.1, HTTP/1.1 without exactly one Host),
CONNECT (405), an idle keep-alive timeout and a deadline for the whole request head (408: a
slowloris client trickling bytes gets no more time), a cap on one address's open connections
(503), write back-pressure, streamed reply bodies (``Reply.stream``: pulled only while the
client's transport is below its high-water mark, framed by length or chunked, closed short when
the body cannot be completed, cut off after ``send_timeout_seconds`` without progress), a client
disconnect cancelling its request's upstream work, a Date header, and a graceful drain on
SIGTERM. Every refusal is JSON ``{"status": false, ...}``. The
admin endpoints (FastAPI) are reached through a small ASGI bridge (asgibridge.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from email.utils import formatdate

from tollgate_common.http.connection import HttpConnection, Limits
from tollgate_common.http.exchange import Handler

log = logging.getLogger(__name__)

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
        self.per_client: dict[str, int] = {}  # open connections by client address
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

    def admit(self, conn: HttpConnection) -> bool:
        """Track a new connection; False when its address is over its cap of open connections
        (one client must not take every slot, slowly or not). The caller refuses it, and
        ``forget`` counts it out like any other."""
        self.connections.add(conn)
        n = self.per_client.get(conn.client, 0) + 1
        self.per_client[conn.client] = n
        cap = self.limits.max_connections_per_client
        return cap <= 0 or n <= cap

    def forget(self, conn: HttpConnection) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        n = self.per_client[conn.client] - 1
        if n:
            self.per_client[conn.client] = n
        else:
            del self.per_client[conn.client]
        if not self.connections:
            self._all_closed.set()

    def _sweep(self) -> None:
        # One timer for every connection, not one per request: per-request timers are a
        # measurable share of a request on the proxy path.
        self.date_header = b"date: %s\r\n" % formatdate(usegmt=True).encode()
        now = self.loop.time()
        for conn in [c for c in self.connections if c.expired(now)]:
            conn.expire()
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
