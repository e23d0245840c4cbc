"""The upstream HTTP client: a keep-alive connection pool per upstream origin, over asyncio
protocols and httptools (the llhttp parser that uvicorn uses).

Why a client of our own: on the proxy path the client is most of the cost. The seed design's httpx
call measured ~600 req/s for the whole gateway (its pool, and a failed ``import sniffio`` on every
request, dominated; 342 req/s in our bench with one shared client); aiohttp's client costs ~46 µs
more per request than this pool. This pool alone drives ~77k req/s against nginx from one core
(13-14 µs of CPU per request, two thirds of it the kernel's), and inside the gateway it is ~10% of
a miss (py-spy, bench/profile.py). It does only what a reverse proxy needs: HTTP/1.1, bodies up
to a threshold read whole (the gateway inspects and caches them) and larger ones streamed with
back-pressure (bodystream.py), keep-alive reuse with an idle timeout shorter than
the usual servers' own, and the failure cases tested in tests/test_client.py (Connection: close,
chunked, read-until-close, interim answers, streamed bodies (and tests/test_bodystream.py), stale
pooled connections, timeouts, resets, cancellation, TLS), on asyncio's loop and on uvloop.

INTERFACE CONTRACT (the rest of the gateway codes against exactly this):

- ``UpstreamPool(max_per_origin=..., connect_timeout=..., buffer_bytes=...)``; optional:
  ``ssl_context`` (default: the system CAs), ``idle_timeout`` (seconds a pooled connection may
  sit unused, default 4; a sweep closes it then, traffic or not).
- ``await pool.request(origin, method, target, headers, body) -> UpstreamResponse``
  ``origin`` is ``"http://host:port"`` (scheme+authority of an endpoint URL, no path);
  ``target`` the request-target (path and query, already built by the caller);
  ``headers`` a list of ``(name, value)`` byte pairs, hop-by-hop headers already removed,
  without Host (the pool sets Host from the origin) and without Content-Length (set from body).
- A response body up to ``buffer_bytes`` is read in full (``UpstreamResponse.body``). A larger one
  comes as ``UpstreamResponse.stream`` (a ``BodyStream``, ``body`` empty) as soon as it is known
  to be larger (its Content-Length, or a chunked body grown past it): the caller pulls it with
  ``next()`` and must ``close()`` it. Its connection and its slot stay taken until the body is
  read to its end (then the connection is pooled again) or the stream is closed or fails (then the
  connection is closed). ``UpstreamResponse.headers`` are the raw upstream headers; the caller
  strips hop-by-hop headers.
- Deadlines belong to the caller (``asyncio.timeout``). The pool is cancel-safe: a cancelled
  request closes its connection instead of returning it to the pool.
- Errors: ``UpstreamError`` for connect failures (``ConnectFailed``: nothing was sent), resets,
  protocol errors; from ``BodyStream.next()`` when the upstream fails mid-body.
- ``await pool.aclose()`` closes every connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from functools import partial
from urllib.parse import urlsplit

from tollgate_common.served import SERVED
from tollgate_common.tracing import inject
from tollgate_gateway.connection import (
    ConnectFailed,
    Connection,
    Counts,
    Stale,
    UpstreamError,
    UpstreamResponse,
)
from tollgate_gateway.limiter import Limiter

__all__ = ["UpstreamError", "UpstreamPool", "UpstreamResponse"]

# Safe to send twice (RFC 9110 §9.2.2): only these are retried after a keep-alive race.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
CLOSE_GRACE_SECONDS = 2.0  # aclose waits this long for sockets to close (TLS close_notify)
# Closed by us before the upstream's own keep-alive timeout closes it (uvicorn, Node and Apache:
# 5 s), which would race a request we send: a GET is retried then, a POST fails.
IDLE_TIMEOUT_SECONDS = 4.0
# The sweep runs this long after the oldest idle connection expires: one timer per pool, set for
# the next expiry only (an idle gateway is not woken up, and a request costs no timer).
SWEEP_SLACK_SECONDS = 0.05


class _Origin:
    def __init__(self, origin: str, limit: int) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamError(f"unsupported upstream origin {origin!r}")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.host_header = parts.netloc.encode()
        self.idle: deque[Connection] = deque()
        self.slots = Limiter(limit)
        self.all: set[Connection] = set()


class UpstreamPool:
    """Keep-alive connections per origin, at most ``max_per_origin`` in use at once."""

    def __init__(
        self,
        *,
        max_per_origin: int = 256,
        connect_timeout: float = 5.0,
        buffer_bytes: int = 1 << 20,
        ssl_context: ssl.SSLContext | None = None,
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
    ) -> None:
        self.max_per_origin = max_per_origin
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.buffer_bytes = buffer_bytes
        self._ssl = ssl_context
        self._origins: dict[str, _Origin] = {}
        self._closed = False
        self._counts = Counts()
        self._sweeper: asyncio.TimerHandle | None = None
        self.propagate = False  # set when tracing is on (app.py)

    async def request(
        self,
        origin: str,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes = b"",
    ) -> UpstreamResponse:
        o = self._origins.get(origin)
        if o is None:
            if self._closed:
                raise UpstreamError("the upstream pool is closed")
            o = self._origins[origin] = _Origin(origin, self.max_per_origin)
        wire = b""
        if self.propagate:  # tracing on: the request's trace context, not the client's
            wire = SERVED.get()[1]  # an unsampled request's header lines, ready (most)
            if not wire:
                headers = inject(headers)
        head = _head(method, target, o.host_header, headers, body, wire)
        await o.slots.acquire()
        try:
            resp = await self._exchange(o, method, head, body, retry=method in IDEMPOTENT)
        except Stale as exc:
            o.slots.release()
            raise UpstreamError(str(exc)) from None
        except BaseException:
            o.slots.release()
            raise
        if resp.stream is None:
            o.slots.release()
        # else the slot is the streamed body's until it settles (_settle)
        return resp

    async def _exchange(
        self, o: _Origin, method: str, head: bytes, body: bytes, retry: bool
    ) -> UpstreamResponse:
        conn = self._idle(o) or await self._connect(o)
        reused = conn.used
        try:
            resp = await conn.send(head + body if body else head, method == "HEAD")
        except Stale:
            self._discard(o, conn)
            if reused and retry:  # the server closed an idle connection just as we sent
                return await self._exchange(o, method, head, body, retry=False)
            raise
        except BaseException:  # cancelled or failed mid-answer: the connection's state is unknown
            self._discard(o, conn)
            raise
        conn.used = True
        if resp.stream is not None:  # pooled or closed once its body is through (_settle)
            resp.stream.bind_settle(partial(self._settle, o, conn))
        elif conn.keep_alive and not conn.closed and method != "HEAD":
            # _keep inlined: one call less on every small answer
            conn.idle_since = conn.loop.time()
            o.idle.append(conn)
            if self._sweeper is None:
                self._sweeper = conn.loop.call_at(
                    conn.idle_since + self.idle_timeout + SWEEP_SLACK_SECONDS, self._sweep
                )
        else:  # HEAD too: llhttp cannot be told that answer has no body; a new parser is safer
            self._discard(o, conn)
        return resp

    def _keep(self, o: _Origin, conn: Connection) -> None:
        conn.idle_since = conn.loop.time()
        o.idle.append(conn)
        if self._sweeper is None:
            self._sweeper = conn.loop.call_at(
                conn.idle_since + self.idle_timeout + SWEEP_SLACK_SECONDS, self._sweep
            )

    def _settle(self, o: _Origin, conn: Connection, reusable: bool) -> None:
        """A streamed body is through (reusable) or abandoned or failed: its connection goes back
        to the pool or is closed, and its slot is free."""
        if reusable and conn.keep_alive and not conn.closed and not self._closed:
            self._keep(o, conn)
        else:
            self._discard(o, conn)
        o.slots.release()

    def _idle(self, o: _Origin) -> Connection | None:
        """A pooled connection, most recently used first (least likely to be stale). Ones idle
        longer than ``idle_timeout`` are closed: the oldest one per call, so that connections a
        burst opened do not linger, and any met on the way."""
        idle = o.idle
        if not idle:
            return None
        now = idle[-1].loop.time()
        if len(idle) > 1 and self._expired(idle[0], now):
            self._discard(o, idle.popleft())
        while idle:
            conn = idle.pop()
            if not self._expired(conn, now):
                return conn
            self._discard(o, conn)
        return None

    def _sweep(self) -> None:
        """Close the connections idle past ``idle_timeout``, then set the timer for the next
        expiry, if any connection is still idle. Without it, the sockets a burst opened stayed
        open until the next request to their origin."""
        self._sweeper = None
        if self._closed:
            return
        loop: asyncio.AbstractEventLoop | None = None
        oldest: float | None = None
        for o in self._origins.values():
            if not o.idle:
                continue
            loop = o.idle[0].loop
            now = loop.time()
            keep: deque[Connection] = deque()  # still oldest first
            for conn in o.idle:
                if self._expired(conn, now):
                    self._discard(o, conn)
                else:
                    keep.append(conn)
            o.idle = keep
            if keep and (oldest is None or keep[0].idle_since < oldest):
                oldest = keep[0].idle_since
        if loop is not None and oldest is not None:
            self._sweeper = loop.call_at(
                oldest + self.idle_timeout + SWEEP_SLACK_SECONDS, self._sweep
            )

    def _expired(self, conn: Connection, now: float) -> bool:
        return conn.closed or now - conn.idle_since > self.idle_timeout

    async def _connect(self, o: _Origin) -> Connection:
        if self._closed:
            raise UpstreamError("the upstream pool is closed")
        loop = asyncio.get_running_loop()
        ctx = self._tls_context() if o.tls else None
        try:
            async with asyncio.timeout(self.connect_timeout):
                try:
                    proto = await self._open(loop, o, ctx)
                except ConnectionRefusedError:
                    # Nothing was sent, so one more try is safe for any method. Behind a
                    # Service address it lands on another pod (kube-proxy picks per connection):
                    # a pod that stopped listening before its endpoint was withdrawn costs no
                    # request.
                    proto = await self._open(loop, o, ctx)
        except TimeoutError:
            raise ConnectFailed(f"connect to {o.host}:{o.port} timed out") from None
        except OSError as exc:  # refused, unreachable, and TLS failures (ssl.SSLError)
            raise ConnectFailed(f"connect to {o.host}:{o.port} failed: {exc}") from None
        if self._closed:  # aclose ran while we connected: it could not see this one
            proto.close()
            raise UpstreamError("the upstream pool is closed")
        o.all.add(proto)
        return proto

    async def _open(
        self, loop: asyncio.AbstractEventLoop, o: _Origin, ctx: ssl.SSLContext | None
    ) -> Connection:
        _, proto = await loop.create_connection(
            lambda: Connection(self.buffer_bytes, self._counts),
            o.host,
            o.port,
            ssl=ctx,
            server_hostname=o.host if ctx else None,
        )
        return proto

    def _tls_context(self) -> ssl.SSLContext:
        # Built once: loading the system CA store costs milliseconds per context.
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _discard(self, o: _Origin, conn: Connection) -> None:
        conn.close()
        o.all.discard(conn)

    @property
    def connections_opened(self) -> int:
        """Sockets connected so far: keep-alive reuse shows as few openings (tests, metrics)."""
        return self._counts.opened

    @property
    def connections_closed(self) -> int:
        """Sockets closed so far: after ``aclose``, anything short of ``connections_opened``
        is a leaked socket."""
        return self._counts.closed

    def open_connections(self) -> int:
        """Connections the pool still holds (idle or in use), for tests and metrics. Safe from
        another thread (a test's): each set is copied in one step (list() of a set holds the
        GIL throughout) before it is walked, so the loop adding a connection cannot break it."""
        return sum(1 for o in list(self._origins.values()) for c in list(o.all) if not c.closed)

    async def aclose(self) -> None:
        """Close every connection and wait (bounded) until their sockets are released."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        conns = [c for o in self._origins.values() for c in o.all]
        for o in self._origins.values():
            o.all.clear()
            o.idle.clear()
        for conn in conns:
            conn.close()
        pending = [c.lost for c in conns if not c.lost.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=CLOSE_GRACE_SECONDS)
            if late:  # a TLS peer that never answers our close_notify
                for conn in conns:
                    if not conn.lost.done() and conn.transport is not None:
                        conn.transport.abort()


def _head(
    method: str,
    target: str,
    host: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    wire: bytes = b"",
) -> bytes:
    """The request's head; ``wire``: more header lines, written as they are."""
    lines = [f"{method} {target} HTTP/1.1\r\nhost: ".encode(), host, b"\r\n", wire]
    for name, value in headers:
        lines += [name, b": ", value, b"\r\n"]
    if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        lines.append(b"content-length: %d\r\n" % len(body))
    lines.append(b"\r\n")
    return b"".join(lines)
