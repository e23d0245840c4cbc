"""One upstream HTTP/1.1 connection: an asyncio protocol around httptools' response parser (the
llhttp parser uvicorn uses), one request at a time. An answer up to ``threshold`` bytes is read
whole (the fast path: most answers are small, and the proxy inspects and caches them); a larger
one (by its Content-Length, or as a chunked or read-until-close body grows past it) is handed out
at that point as a ``BodyStream`` that the rest of the body is fed into (bodystream.py, issue 14).
The pool in client.py hands these out; the failure cases are tested through it
(tests/test_client.py, tests/test_bodystream.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import cast

import httptools

from tollgate_gateway.bodystream import BodyStream

MAX_HEADER_BYTES = 64 << 10  # an upstream streaming endless headers must not fill memory


class UpstreamError(Exception):
    """The upstream could not be reached or did not speak valid HTTP."""


class ConnectFailed(UpstreamError):
    """No connection could be opened, so nothing of the request was sent (a caller may rely on
    that: an authorize that never left cannot have charged)."""


class Stale(UpstreamError):
    """The connection closed before a single byte of the answer arrived: on a pooled connection,
    the server closed it while idle just as we sent (the keep-alive race)."""


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    stream: BodyStream | None = None  # a body over the threshold: ``body`` is empty then


class Counts:
    """Sockets a pool's connections opened and closed (counted in the protocol callbacks, so a
    connection cancelled mid-connect is counted both ways too)."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0


class Connection(asyncio.Protocol):
    """One connection; one request at a time (no pipelining)."""

    def __init__(self, threshold: int, counts: Counts) -> None:
        self.threshold = threshold
        self.counts = counts
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.used = False  # served a request before: may be stale when picked from the pool
        self.idle_since = 0.0  # loop time it went back to the pool
        # get_running_loop() costs a getpid() syscall on Python 3.11: looked up once here.
        self.loop = asyncio.get_running_loop()
        self.keep_alive = True
        self.head = False
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self._waiter: asyncio.Future[UpstreamResponse] | None = None
        self._reset_message()

    def _reset_message(self) -> None:
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._size = 0
        self._received = False
        self._until_close = False
        self._interim = False
        self._stream: BodyStream | None = None

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are alike but not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)
        self.counts.opened += 1

    def data_received(self, data: bytes) -> None:
        w = self._waiter
        if (w is None or w.done()) and self._stream is None:
            # Bytes nobody asked for (a 408 before an idle close, junk after a body): the parser
            # would pin them on the next request's answer. The connection is unusable.
            self.close()
            return
        self._received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"invalid HTTP from upstream: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        self.closed = True  # never hand this connection out again; connection_lost follows
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.lost.done():
            self.lost.set_result(None)
            self.counts.closed += 1
        if self._waiter is None or self._waiter.done():
            s = self._stream
            if s is not None:  # mid-body of a streamed answer
                self._stream = None
                if self._until_close:
                    s.end()
                else:
                    s.fail(UpstreamError("connection closed in the middle of the answer"))
            return
        if self._until_close:  # a body delimited by the end of the connection (RFC 9112 §6.3)
            self._finish()
        elif not self._received:
            self._fail(Stale("connection closed before any answer"))
        else:
            self._fail(UpstreamError("connection closed in the middle of the answer"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        w = self._waiter
        if w is None or w.done():  # a second answer to one request: nothing to pair it with
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            self._abort("upstream response headers too large")
            return
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue, 103): the real one follows
            self._interim = True
            return
        has_length = chunked = False
        length = 0
        for name, value in self._headers:
            lname = name.lower()
            if lname == b"content-length":
                has_length = True
                length = int(value or b"0")
            elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        no_body = status in (204, 304)
        self._until_close = not (has_length or chunked or no_body)
        self.keep_alive = self.parser.should_keep_alive() and not self._until_close
        if self.head:  # a HEAD answer ends at its headers whatever Content-Length says
            self._until_close = self.keep_alive = False
            self._finish()
        elif length > self.threshold and not no_body:
            self._start_stream(length)

    def on_body(self, body: bytes) -> None:
        s = self._stream
        if s is not None:
            s.feed(body)
            return
        if self.closed:
            return  # aborted: the rest of this chunk is dropped
        self._size += len(body)
        self._body.append(body)
        if self._size > self.threshold:  # chunked or until close, and grown past the threshold
            self._start_stream(None)

    def on_message_complete(self) -> None:
        if self._interim:
            self._headers, self._header_bytes, self._interim = [], 0, False
            return
        self._finish()

    # the pool's side
    def send(self, data: bytes, head: bool = False) -> asyncio.Future[UpstreamResponse]:
        assert self.transport is not None
        self._reset_message()
        self.head = head
        self._waiter = self.loop.create_future()
        self.transport.write(data)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _finish(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            w.set_result(UpstreamResponse(self.parser.get_status_code(), self._headers, body))
        elif self._stream is not None:  # the last byte of a streamed body
            s, self._stream = self._stream, None
            s.end()

    def _start_stream(self, length: int | None) -> None:
        """Hand the answer out now, its body to follow through a BodyStream (with what was read
        of it so far)."""
        w = self._waiter
        if w is None or w.done():
            return
        s = BodyStream(self.transport, self.loop, length)
        for chunk in self._body:
            s.feed(chunk)
        self._body = []
        self._stream = s
        w.set_result(UpstreamResponse(self.parser.get_status_code(), self._headers, b"", s))

    def _fail(self, exc: UpstreamError) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_exception(exc)
        elif self._stream is not None:
            s, self._stream = self._stream, None
            s.fail(exc)

    def _abort(self, message: str) -> None:
        self._fail(UpstreamError(message))
        self._body.clear()
        if self.transport is not None:
            self.transport.abort()  # drop what is buffered: nothing more of it will be read
        self.closed = True
