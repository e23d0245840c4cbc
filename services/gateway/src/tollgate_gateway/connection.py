"""One upstream HTTP/1.1 connection: an asyncio protocol around httptools' response parser (the
llhttp parser uvicorn uses), one request at a time, the answer read whole. The pool in client.py
hands these out; the failure cases are tested through it (tests/test_client.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import cast

import httptools

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


class Counts:
    """Sockets a pool's connections opened and closed (counted in the protocol callbacks, so a
    connection cancelled mid-connect is counted both ways too)."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0


class Connection(asyncio.Protocol):
    """One connection; one request at a time (no pipelining)."""

    def __init__(self, max_body: int, counts: Counts) -> None:
        self.max_body = max_body
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

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are alike but not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)
        self.counts.opened += 1

    def data_received(self, data: bytes) -> None:
        w = self._waiter
        if w is None or w.done():
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
        for name, value in self._headers:
            lname = name.lower()
            if lname == b"content-length":
                has_length = True
                if int(value or b"0") > self.max_body:
                    self._abort("upstream response body too large")
                    return
            elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        no_body = status in (204, 304)
        self._until_close = not (has_length or chunked or no_body)
        self.keep_alive = self.parser.should_keep_alive() and not self._until_close
        if self.head:  # a HEAD answer ends at its headers whatever Content-Length says
            self._until_close = self.keep_alive = False
            self._finish()

    def on_body(self, body: bytes) -> None:
        if self.closed:
            return  # aborted: the rest of this chunk is dropped
        self._size += len(body)
        if self._size > self.max_body:
            self._abort("upstream response body too large")
            return
        self._body.append(body)

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

    def _fail(self, exc: UpstreamError) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_exception(exc)

    def _abort(self, message: str) -> None:
        self._fail(UpstreamError(message))
        self._body.clear()
        if self.transport is not None:
            self.transport.abort()  # drop what is buffered: nothing more of it will be read
        self.closed = True
