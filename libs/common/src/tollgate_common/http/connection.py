"""One client connection of the services' HTTP/1.1 server (server.py): parsing with
httptools, answering in order, limits, flow control; and the pure framing of a reply."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import unquote

import httptools

from tollgate_common.http.exchange import BodySource, BodyTooLarge, Incoming, Reply, error_body

log = logging.getLogger(__name__)
access = logging.getLogger("tollgate.access")


REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
MAX_PIPELINED = 16  # requests parsed ahead of their answers before reading pauses
VERSIONS = ("1.1", "1.0")  # 0.9 has no headers to frame anything by; 2.0 is not spoken on this port
# RFC 9110 §15.5.6: a 405 says what is allowed. Every method but CONNECT reaches the handler.
ALLOW = b"allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n"


class Refusal(Exception):
    """A request the server answers itself (4xx) and closes the connection after."""

    def __init__(self, status: int, message: str, headers: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class Owner(Protocol):
    """What a connection needs of the server that accepted it (httpserver.HttpServer is one):
    a protocol here, so this module imports nothing of the server's and the two never form an
    import circle."""

    handler: Callable[[Incoming], Awaitable[Reply | None]]
    limits: Limits
    access_log: bool
    loop: asyncio.AbstractEventLoop
    date_header: bytes

    def admit(self, conn: HttpConnection) -> bool: ...

    def forget(self, conn: HttpConnection) -> None: ...


class Limits:
    """What one connection may do; the service's settings fill it."""

    def __init__(
        self,
        *,
        max_header_bytes: int = 64 << 10,
        max_body_bytes: int = 1 << 20,
        keep_alive_seconds: float = 5.0,
        header_timeout_seconds: float = 10.0,
        max_connections_per_client: int = 0,
        send_timeout_seconds: float = 60.0,
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.keep_alive_seconds = keep_alive_seconds
        # From the first byte of a request head to its end, however the bytes trickle in.
        self.header_timeout_seconds = header_timeout_seconds
        # 0: no cap. The public edge sets one (the gateway's setting); a service only its own peers
        # reach (auth, behind every gateway worker) keeps none.
        self.max_connections_per_client = max_connections_per_client
        # A streamed body's client that takes no byte for this long is closed (nginx's
        # send_timeout): it holds an upstream connection, not only its own.
        self.send_timeout_seconds = send_timeout_seconds


def error_reply(status: int, message: str, headers: bytes = b"") -> bytes:
    """A complete response that ends the connection: the server's own 4xx answers."""
    body = error_body(message)
    return (
        b"HTTP/1.1 %d %s\r\n%scontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s"
        % (status, REASONS.get(status, b""), headers, len(body), body)
    )


def request_target(method: str, version: str, hosts: int, url: bytes) -> tuple[bytes, bytes]:
    """Pure: the path and query a complete request head asks for, or a Refusal. Origin-form and
    absolute-form are served, asterisk-form only for OPTIONS, authority-form (CONNECT) never
    (RFC 9112 §3.2); HTTP/1.1 needs exactly one Host."""
    if version not in VERSIONS:
        raise Refusal(400, f"HTTP version {version} is not supported: use HTTP/1.1")
    if hosts > 1 or (hosts == 0 and version == "1.1"):  # RFC 9112 §3.2
        raise Refusal(400, "an HTTP/1.1 request needs exactly one Host header")
    if method == "CONNECT":
        raise Refusal(405, "CONNECT is not supported: this server opens no tunnels", ALLOW)
    try:
        parsed = httptools.parse_url(url)
    except httptools.HttpParserInvalidURLError:
        raise Refusal(400, "malformed request-target") from None
    path = parsed.path
    if path is None:  # absolute-form with no path: RFC 9110 §4.2.3 makes it "/"
        path = b"/"
    elif path[:1] != b"/" and (path != b"*" or method != "OPTIONS"):
        raise Refusal(400, "malformed request-target")
    return path, parsed.query or b""


def render(reply: Reply, date: bytes, keep_alive: bool, head: bool) -> bytes:
    """Pure: a reply as HTTP/1.1 bytes. Content-Length comes from the body (a HEAD answer keeps
    the length of what a GET would send when the handler gave one)."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (reply.status, REASONS.get(reply.status, b"")), date]
    length = -1
    for name, value in reply.headers:
        if name == b"content-length":
            length = int(value)
            continue
        lines += [name, b": ", value, b"\r\n"]
    if length < 0 or not head:
        length = len(reply.body)
    if reply.status != 204:  # a 204 has no body and no Content-Length (RFC 9110 §8.6)
        lines.append(b"content-length: %d\r\n" % length)
    if not keep_alive:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    if not head:
        lines.append(reply.body)
    return b"".join(lines)


def render_streamed_head(reply: Reply, date: bytes, keep_alive: bool) -> tuple[bytes, bool]:
    """Pure: the head of a reply whose body is streamed, and whether the body is sent chunked.
    A known length is sent as Content-Length; an unknown one chunked on a connection kept alive,
    or delimited by the close otherwise (an HTTP/1.0 client knows no chunked coding)."""
    assert reply.stream is not None
    lines = [b"HTTP/1.1 %d %s\r\n" % (reply.status, REASONS.get(reply.status, b"")), date]
    for name, value in reply.headers:
        if name not in (b"content-length", b"transfer-encoding"):
            lines += [name, b": ", value, b"\r\n"]
    length = reply.stream.length
    chunked = False
    if length is not None:
        lines.append(b"content-length: %d\r\n" % length)
    elif keep_alive:
        chunked = True
        lines.append(b"transfer-encoding: chunked\r\n")
    if not keep_alive:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    return b"".join(lines), chunked


# The header names the loop over a complete head looks at: the framing ones, and the two
# correlation facts a traced service's front needs first (tracing.HeadSampler), gathered here
# in the loop every request runs anyway: a C-level look of its own cost the front ~2,000
# instructions a request, and a second one for the ingress case (an X-Request-Id on each) ~4,000.
_LOOKED_AT = frozenset(
    {b"host", b"content-length", b"expect", b"x-request-id", b"traceparent", b"tracestate"}
)


class Parsed:
    """One request as parsed, waiting for its turn."""

    __slots__ = (
        "body",
        "first_request_id",
        "headers",
        "keep_alive",
        "method",
        "path",
        "query",
        "trace_context",
    )

    def __init__(
        self,
        method: str,
        path: bytes,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        keep: bool,
        trace_context: bool,
        first_request_id: bytes | None,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.keep_alive = keep
        self.trace_context = trace_context
        self.first_request_id = first_request_id


class HttpConnection(asyncio.Protocol):
    """One client connection. Requests are parsed as bytes arrive and answered one at a time, in
    order, by a task that lives while there is work."""

    def __init__(self, server: Owner) -> None:
        self.server = server
        self.loop = server.loop
        self.limits = server.limits
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.client = ""
        self.pending: deque[Parsed] = deque()
        self.busy = False  # a task is answering
        self._task: asyncio.Task[None] | None = None
        self.closing = False  # answer what is in progress, then close
        self.draining = False  # shutting down: answer what comes, each answer announces the close
        self.gone: asyncio.Future[None] = self.loop.create_future()
        # When the last answer went out (or the connection opened, or body bytes last came):
        # bytes that start no request (a client trickling CRLFs) do not keep a connection alive.
        self.last_active = self.loop.time()
        self.in_head = False  # bytes of a request head arrived and it is not complete yet
        self.head_started = 0.0  # when the first byte of that head arrived
        self.in_body = False  # the head is complete and its body is not
        self._method = ""  # of the request being parsed, from its head
        self._version = ""
        self._path = b""
        self._query = b""
        self.read_paused = False
        self.refusal = b""
        self._writable: asyncio.Future[None] | None = None
        self._source: BodySource | None = None  # the streamed body of the reply being written
        self._chunked = False
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._trace_context = False
        self._first_request_id: bytes | None = None

    # asyncio callbacks
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if peer else ""
        if not self.server.admit(self):
            self._refuse(503, "too many open connections from this address")

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.forget(self)
        self.pending.clear()
        if not self.gone.done():
            self.gone.set_result(None)
        if self._task is not None and not self._task.done():
            # The request in progress has nobody to answer: its upstream work stops now
            # (Incoming.gone tells the proxy why it was cancelled).
            self._task.cancel()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # An Upgrade (websocket, h2c) we do not speak: the request itself is answered as
            # plain HTTP/1.1 (on_message_complete queued it), and the connection ends after it.
            if self.pending:
                self.pending[-1].keep_alive = False
            self._pause_reading()
            if not self.busy:
                self.transport.close()
        except httptools.HttpParserError as exc:
            self._refuse(400, f"malformed HTTP request: {exc}")
        if self.in_body:  # a body on its way: it is idle only once its bytes stop coming
            self.last_active = self.loop.time()

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._reset()
        self.in_head = True
        self.head_started = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))
        self._count_head(len(name) + len(value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.in_body = True
        if self.closing:
            return
        parser = self.parser
        self._version = parser.get_http_version()
        self._method = parser.get_method().decode("ascii")
        expect = False
        hosts = 0
        for name, value in self._headers:
            if name not in _LOOKED_AT:  # most: one set look, not a compare per name below
                continue
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                if value.isdigit() and int(value) > self.limits.max_body_bytes:
                    self._refuse(413, f"request body over {self.limits.max_body_bytes} bytes")
                    return
            elif name == b"expect":
                expect = expect or value.lower() == b"100-continue"
            elif name == b"x-request-id":
                if self._first_request_id is None:
                    self._first_request_id = value
            else:  # traceparent, tracestate
                self._trace_context = True
        try:
            self._path, self._query = request_target(self._method, self._version, hosts, self._url)
        except Refusal as refusal:
            self._refuse(refusal.status, refusal.message, refusal.headers)
            return
        if expect:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.limits.max_body_bytes:
            self._refuse(413, f"request body over {self.limits.max_body_bytes} bytes")
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.in_body = False
        if self.closing:
            return
        body = b"".join(self._body) if len(self._body) != 1 else self._body[0]
        # HTTP/1.0 clients get one answer per connection (as uvicorn does): keep-alive there
        # needs headers of its own, and no client we serve relies on it.
        keep = self.parser.should_keep_alive() and self._version == "1.1"
        parsed = Parsed(
            self._method,
            self._path,
            self._query,
            self._headers,
            body,
            keep,
            self._trace_context,
            self._first_request_id,
        )
        self.pending.append(parsed)
        self._reset()
        if len(self.pending) > MAX_PIPELINED:
            self._pause_reading()
        if not self.busy:
            self.busy = True
            self._task = self.loop.create_task(self._answer())

    # answering
    async def _answer(self) -> None:
        try:
            while self.pending and not self.gone.done():
                p = self.pending.popleft()
                out = await self._one(p)
                if self.gone.done():
                    if self._source is not None:
                        self._source.close()
                        self._source = None
                    return
                if out:
                    self.transport.write(out)
                if self._source is not None and not await self._stream_body():
                    self.transport.close()  # the body is cut short: only the close can say so
                    return
                if not p.keep_alive or self.closing or self.draining:
                    if self.refusal:
                        self.transport.write(self.refusal)
                    self.transport.close()
                    return
                if self._writable is not None and not self._writable.done():
                    await self._writable  # a client reading slowly: stop producing for it
                if self.read_paused and len(self.pending) <= MAX_PIPELINED // 2:
                    self._resume_reading()
        finally:
            self.busy = False
            self.last_active = self.loop.time()

    async def _one(self, p: Parsed) -> bytes:
        started = time.perf_counter()
        try:
            reply = await self.server.handler(self._incoming(p))
        except Exception:  # a bug must cost one 500, never the connection's other requests
            log.exception("unhandled error answering %s %s", p.method, p.path.decode("latin-1"))
            reply = Reply(
                500, [(b"content-type", b"application/json")], error_body("internal error")
            )
        if reply is None:  # the client went away; nobody to answer
            return b""
        if self.server.access_log:
            access.info(
                "%s %s %s %d %.1fms",
                self.client,
                p.method,
                p.path.decode("latin-1"),  # never the query: it may carry an API key
                reply.status,
                (time.perf_counter() - started) * 1000,
            )
        # A refusal of a later pipelined request is written after this reply, so this one
        # does not announce the close.
        keep = p.keep_alive and not self.draining and (not self.closing or bool(self.refusal))
        if reply.stream is not None:
            if p.method != "HEAD":
                head, self._chunked = render_streamed_head(reply, self.server.date_header, keep)
                self._source = reply.stream
                return head
            reply.stream.close()
        return render(reply, self.server.date_header, keep, p.method == "HEAD")

    async def _stream_body(self) -> bool:
        """Write the streamed body as the client takes it: the next bytes are pulled only while
        the transport is below its write high-water mark (``pause_writing``), so a slow client
        holds back the upstream instead of filling this process. False when the body could not
        be completed (the upstream failed mid-body, or the client left)."""
        source = self._source
        assert source is not None
        self._source = None
        write = self.transport.write
        chunked = self._chunked
        try:
            while True:
                try:
                    chunk = await source.next()
                except Exception as exc:  # the upstream failed mid-body; the status is sent
                    log.warning("streamed body cut short: %s", exc)
                    return False
                if self.gone.done():
                    return False
                if not chunk:
                    break
                if chunked:
                    write(b"%x\r\n" % len(chunk))
                    write(chunk)
                    write(b"\r\n")
                else:
                    write(chunk)
                if self._writable is not None and not self._writable.done():
                    try:
                        async with asyncio.timeout(self.limits.send_timeout_seconds):
                            await asyncio.shield(self._writable)
                    except TimeoutError:  # abort: a close would wait for it to read the rest
                        log.info(
                            "a client took no byte for %gs mid-body",
                            self.limits.send_timeout_seconds,
                        )
                        self.transport.abort()
                        return False
                    if self.gone.done():
                        return False
            if chunked:
                write(b"0\r\n\r\n")
            return True
        finally:
            source.close()

    def _incoming(self, p: Parsed) -> Incoming:
        raw_path = p.path
        body = p.body

        async def read_body(limit: int) -> bytes:
            if len(body) > limit:
                raise BodyTooLarge(f"request body over {limit} bytes")
            return body

        return Incoming(
            p.method,
            unquote(raw_path.decode("latin-1")),
            raw_path,
            p.query,
            p.headers,
            self.client,
            "http",
            read_body,
            self._disconnected,
            self.gone.done,
            p.trace_context,
            p.first_request_id,
        )

    async def _disconnected(self) -> None:
        await asyncio.shield(self.gone)

    # limits and flow control
    def _count_head(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > self.limits.max_header_bytes:
            self._refuse(431, f"request head over {self.limits.max_header_bytes} bytes")

    def _refuse(self, status: int, message: str, headers: bytes = b"") -> None:
        """The server's own answer to a request it cannot take; the connection ends with it,
        after the answer to a request in progress. Requests parsed after that one are dropped."""
        if self.closing:
            return
        self.closing = True
        self.pending.clear()
        self._pause_reading()
        if self.busy:
            # written by _answer after its reply
            self.refusal = error_reply(status, message, headers)
            return
        self.transport.write(error_reply(status, message, headers))
        self.transport.close()

    def _pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    # the server's sweeps
    def expired(self, now: float) -> bool:
        """Idle past the keep-alive timeout (or a body stalled that long), or a request head
        not whole within the header timeout of its first byte."""
        if self.busy or self.pending:
            return False
        if self.in_head:
            return now - self.head_started > self.limits.header_timeout_seconds
        return now - self.last_active > self.limits.keep_alive_seconds

    def expire(self) -> None:
        """Close an expired connection; a client still sending its head is told why."""
        if self.in_head and not self.closing:
            self.closing = True
            self.transport.write(error_reply(408, "request head not received in time"))
        self.transport.close()

    def drain(self) -> None:
        """Shutdown: the next answer says `connection: close` and ends the connection. An idle
        connection is not closed at once but left to the keep-alive timeout: a client that sends
        on it just then would see a reset for a request we may have read (for the gateway, an
        authorize whose outcome it never learns). Pools that time out idle connections before we
        do (the gateway's: 4 s against 5 s) close it themselves or get the close with an answer."""
        self.draining = True
