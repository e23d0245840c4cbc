"""The upstream pool against real servers on loopback, under asyncio's loop and uvloop
(conftest.py runs this module on both).

The demo upstream (tollgate_testkit.upstream) covers the ordinary modes; a raw socket server below
plays the edge cases no framework will (interim answers, resets mid-body, junk on idle
connections, the keep-alive race). Every test ends with the pool's leak check: after ``aclose``
every socket it opened has been closed.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tollgate_gateway.client import UpstreamError, UpstreamPool, UpstreamResponse
from tollgate_testkit.fixtures import Upstream
from tollgate_testkit.kube import make_pki

Factory = Callable[..., Upstream]
Handler = Callable[[socket.socket], None]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    p = UpstreamPool(buffer_bytes=1 << 20, connect_timeout=1.0)
    yield p
    await p.aclose()
    assert p.connections_closed == p.connections_opened, "a socket was leaked"


async def get(pool: UpstreamPool, origin: str, path: str = "/eod/AAPL") -> UpstreamResponse:
    return await pool.request(origin, "GET", path, [(b"accept", b"application/json")])


# --- the demo upstream -------------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection(
    pool: UpstreamPool, upstream_factory: Factory
) -> None:
    """Sequential requests share one connection."""
    up = upstream_factory()
    for _ in range(20):
        assert (await get(pool, up.url)).status == 200
    assert pool.connections_opened == 1
    assert pool.open_connections() == 1


async def test_concurrent_requests_open_parallel_connections(
    pool: UpstreamPool, upstream_factory: Factory
) -> None:
    """Concurrency opens connections as needed and every answer reaches its own caller."""
    up = upstream_factory()
    results = await asyncio.gather(*(get(pool, up.url, f"/eod/S{i}") for i in range(30)))
    assert [r.status for r in results] == [200] * 30
    assert all(f'"S{i}"'.encode() in r.body for i, r in enumerate(results))


async def test_concurrency_is_limited_per_origin(upstream_factory: Factory) -> None:
    """More concurrent requests than max_per_origin queue for a connection instead of opening."""
    up = upstream_factory()
    up.set("slow", delay=0.05)
    pool = UpstreamPool(max_per_origin=2)
    try:
        results = await asyncio.gather(*(get(pool, up.url) for _ in range(6)))
        assert [r.status for r in results] == [200] * 6
        assert pool.connections_opened == 2
    finally:
        await pool.aclose()


async def test_connection_close_is_honoured(pool: UpstreamPool, upstream_factory: Factory) -> None:
    """A server that says Connection: close gets a new connection per request."""
    up = upstream_factory(mode="close")
    for _ in range(3):
        assert (await get(pool, up.url)).status == 200
    assert pool.connections_opened == 3
    assert pool.open_connections() == 0


async def test_chunked_bodies_are_joined(pool: UpstreamPool, upstream_factory: Factory) -> None:
    """A chunked answer arrives whole and the connection is reused."""
    up = upstream_factory(mode="chunked")
    r1 = await get(pool, up.url)
    r2 = await get(pool, up.url)
    assert r1.body == r2.body
    assert r1.body.startswith(b'{"status": true')
    assert pool.connections_opened == 1


async def test_large_body_within_buffer(pool: UpstreamPool, upstream_factory: Factory) -> None:
    """A body of several hundred kilobytes (under buffer_bytes) arrives whole, not streamed."""
    up = upstream_factory(mode="big")
    up.set("big", size=500_000)
    r = await get(pool, up.url)
    assert r.stream is None
    assert len(r.body) > 500_000
    assert r.body.endswith(b'"}')


async def test_body_over_buffer_streams(pool: UpstreamPool, upstream_factory: Factory) -> None:
    """A Content-Length over buffer_bytes comes as a stream (no cap: issue 14), and its
    connection is pooled again once the body is read."""
    up = upstream_factory(mode="big")
    up.set("big", size=2 << 20)
    r = await get(pool, up.url)
    assert r.stream is not None
    assert r.body == b""
    body = b"".join([chunk async for chunk in chunks(r)])
    assert len(body) == r.stream.length
    assert body.endswith(b'"}')
    assert (await get(pool, up.url)).stream is not None
    assert pool.connections_opened == 1


async def test_reset_is_an_error(pool: UpstreamPool, upstream_factory: Factory) -> None:
    """A connection reset before any answer raises UpstreamError."""
    up = upstream_factory(mode="reset")
    with pytest.raises(UpstreamError):
        await get(pool, up.url)
    assert pool.open_connections() == 0


async def test_refused_is_an_error(pool: UpstreamPool) -> None:
    """Nothing listening raises UpstreamError."""
    with pytest.raises(UpstreamError, match="failed"):
        await pool.request("http://127.0.0.1:1", "GET", "/", [])


async def test_connect_timeout_is_an_error() -> None:
    """A server whose accept queue is full never completes the handshake: connect times out."""
    pool = UpstreamPool(connect_timeout=0.2)
    with full_listener() as port, pytest.raises(UpstreamError, match="timed out"):
        await pool.request(f"http://127.0.0.1:{port}", "GET", "/", [])
    await pool.aclose()


async def test_cancellation_closes_the_connection(
    pool: UpstreamPool, upstream_factory: Factory
) -> None:
    """A caller's deadline closes the connection; it never returns to the pool."""
    up = upstream_factory(mode="hang")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await get(pool, up.url)
    assert pool.open_connections() == 0
    up.set("ok")
    assert (await get(pool, up.url)).status == 200
    assert pool.connections_opened == 2


async def test_cancelled_waiter_keeps_the_slot_count(upstream_factory: Factory) -> None:
    """Callers cancelled while queued for a connection or mid-answer give their slots back."""
    up = upstream_factory(mode="hang")
    pool = UpstreamPool(max_per_origin=1)
    try:
        holder = asyncio.create_task(get(pool, up.url))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await get(pool, up.url)  # queued behind the holder
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder
        up.set("ok")
        assert (await get(pool, up.url)).status == 200
    finally:
        await pool.aclose()


async def test_aclose_closes_every_connection(upstream_factory: Factory) -> None:
    """aclose releases idle connections and fails the ones in use; the pool then refuses."""
    up = upstream_factory()
    pool = UpstreamPool()
    await asyncio.gather(*(get(pool, up.url) for _ in range(5)))
    assert pool.open_connections() >= 1
    await pool.aclose()
    assert pool.open_connections() == 0
    assert pool.connections_closed == pool.connections_opened
    with pytest.raises(UpstreamError, match="closed"):
        await get(pool, up.url)


# --- a raw server for the edge cases -----------------------------------------------------------


async def test_head_has_no_body(pool: UpstreamPool) -> None:
    """HEAD answers end at the headers even with a Content-Length."""
    with RawServer(answer_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")) as origin:
        r = await pool.request(origin, "HEAD", "/", [])
    assert (r.status, r.body) == (200, b"")


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses_keep_the_connection(pool: UpstreamPool, status: int) -> None:
    """204 and 304 end at their headers and the connection is reused."""
    answer = f"HTTP/1.1 {status} X\r\nETag: x\r\n\r\n".encode()
    with RawServer(answer_all(answer)) as origin:
        for _ in range(3):
            r = await get(pool, origin)
            assert (r.status, r.body) == (status, b"")
    assert pool.connections_opened == 1


async def test_interim_answer_is_skipped(pool: UpstreamPool) -> None:
    """A 100 Continue before the answer is not taken for the answer."""
    with RawServer(answer_all(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)) as origin:
        r = await pool.request(origin, "POST", "/", [], b"x")
    assert (r.status, r.body) == (200, b"ok")


async def test_chunked_body_over_buffer_streams(pool: UpstreamPool) -> None:
    """A chunked body that grows past buffer_bytes is handed out as a stream from there on,
    with the bytes read before it."""
    chunk = b"%x\r\n%s\r\n" % (64 << 10, b"x" * (64 << 10))
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 20 + b"0\r\n\r\n"
    with RawServer(answer_all(answer)) as origin:
        r = await get(pool, origin)
        assert r.stream is not None
        assert r.stream.length is None
        body = b"".join([c async for c in chunks(r)])
    assert body == b"x" * (20 << 16)


async def chunks(r: UpstreamResponse) -> AsyncIterator[bytes]:
    assert r.stream is not None
    try:
        while chunk := await r.stream.next():
            yield chunk
    finally:
        r.stream.close()


async def test_read_until_close_body(pool: UpstreamPool) -> None:
    """An answer without length or chunking ends when the server closes."""
    with RawServer(answer_once(b"HTTP/1.1 200 OK\r\n\r\nhello world")) as origin:
        r = await get(pool, origin)
    assert r.body == b"hello world"
    assert pool.open_connections() == 0


async def test_stale_pooled_connection_is_retried(pool: UpstreamPool) -> None:
    """A pooled connection the server closes as we send is retried once on a fresh one."""
    with RawServer(answer_then_drop) as origin:
        assert (await get(pool, origin)).body == b"ok"
        assert (await get(pool, origin)).body == b"ok"  # the first connection drops this one
    assert pool.connections_opened == 2


async def test_stale_connection_is_not_retried_for_post(pool: UpstreamPool) -> None:
    """A request that is not idempotent is never sent twice."""
    with RawServer(answer_then_drop) as origin:
        assert (await pool.request(origin, "POST", "/", [], b"1")).body == b"ok"
        with pytest.raises(UpstreamError, match="before any answer"):
            await pool.request(origin, "POST", "/", [], b"2")
    assert pool.connections_opened == 1


async def test_idle_connection_is_closed_before_the_server_does(pool: UpstreamPool) -> None:
    """A connection idle past idle_timeout is not reused, so a POST never meets the race."""
    pool.idle_timeout = 0.1
    with RawServer(answer_then_drop) as origin:  # a server that drops the 2nd request unanswered
        assert (await pool.request(origin, "POST", "/", [], b"1")).body == b"ok"
        await asyncio.sleep(0.2)
        assert (await pool.request(origin, "POST", "/", [], b"2")).body == b"ok"
    assert pool.connections_opened == 2


async def test_connections_a_burst_opened_are_closed_when_idle(
    pool: UpstreamPool, upstream_factory: Factory
) -> None:
    """Connections idle past idle_timeout are closed, oldest first, even while a newer one stays
    busy."""
    up = upstream_factory()
    up.set("slow", delay=0.05)
    await asyncio.gather(*(get(pool, up.url) for _ in range(4)))
    up.set("ok")
    assert pool.open_connections() == 4
    pool.idle_timeout = 0.1
    for _ in range(8):  # steady light load keeps reusing the newest connection only
        await get(pool, up.url)
        await asyncio.sleep(0.03)
    assert pool.open_connections() == 1


def established(port: int) -> int:
    """Open TCP connections to ``port`` on this host, as the kernel counts them (server side)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    count += 1
    return count


async def test_idle_connections_are_closed_without_further_traffic(
    upstream_factory: Factory,
) -> None:
    """Connections a burst opened are closed once idle past idle_timeout, with no request after
    the burst to notice: the upstream sees its sockets close."""
    up = upstream_factory()
    up.set("slow", delay=0.05)
    pool = UpstreamPool(idle_timeout=0.2)
    try:
        await asyncio.gather(*(get(pool, up.url) for _ in range(8)))
        assert established(up.port) == 8
        for _ in range(100):  # a bounded wait, polled: no assertion on how long it took
            if established(up.port) == 0:
                break
            await asyncio.sleep(0.05)
        assert established(up.port) == 0
        assert pool.open_connections() == 0
        assert (await get(pool, up.url)).status == 200  # the pool still serves afterwards
    finally:
        await pool.aclose()
    assert pool.connections_closed == pool.connections_opened


async def test_reset_mid_answer_is_not_retried(pool: UpstreamPool) -> None:
    """A reset after part of the answer raises, and the request is not sent again."""
    server = RawServer(partial_then_reset)
    with server as origin, pytest.raises(UpstreamError, match="middle"):
        await get(pool, origin)
    assert server.accepted == 1


async def test_idle_connection_with_stray_bytes_is_retired(pool: UpstreamPool) -> None:
    """Bytes that arrive on an idle connection retire it rather than answer the next request."""
    with RawServer(answer_then_junk) as origin:
        assert (await get(pool, origin)).body == b"ok"
        await asyncio.sleep(0.1)  # the junk arrives while the connection is idle
        assert (await get(pool, origin)).body == b"ok"
    assert pool.connections_opened == 2


async def test_garbage_is_a_protocol_error(pool: UpstreamPool) -> None:
    """Bytes that are not HTTP raise UpstreamError."""
    garbage = RawServer(answer_all(b"SSH-2.0-OpenSSH\r\n\r\n"))
    with garbage as origin, pytest.raises(UpstreamError, match="invalid HTTP"):
        await get(pool, origin)


async def test_https_origin(tmp_path: Path) -> None:
    """An https origin speaks TLS, verifies the server's certificate and reuses the connection."""
    pki = make_pki(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.serving_cert, pki.serving_key)
    pool = UpstreamPool(ssl_context=ssl.create_default_context(cafile=str(pki.ca)))
    with RawServer(answer_all(OK), tls=server_ctx) as origin:
        for _ in range(3):
            assert (await get(pool, origin)).body == b"ok"
    await pool.aclose()
    assert pool.connections_opened == pool.connections_closed == 1


async def test_https_untrusted_certificate_is_an_error(tmp_path: Path) -> None:
    """The default TLS context rejects a certificate no system CA signed."""
    pki = make_pki(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.serving_cert, pki.serving_key)
    pool = UpstreamPool()
    server = RawServer(answer_all(OK), tls=server_ctx)
    with server as origin, pytest.raises(UpstreamError, match="CERTIFICATE_VERIFY_FAILED"):
        await get(pool, origin)
    await pool.aclose()


# --- handlers: one call per accepted connection ------------------------------------------------


def read_request(conn: socket.socket) -> bytes:
    """One request (head and Content-Length body), or b"" when the client closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            while len(body) < int(line.split(b":")[1]):
                body += conn.recv(65536)
    return data


def answer_all(answer: bytes) -> Handler:
    def handle(conn: socket.socket) -> None:
        while read_request(conn):
            conn.sendall(answer)

    return handle


def answer_once(answer: bytes) -> Handler:
    def handle(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(answer)

    return handle


def answer_then_drop(conn: socket.socket) -> None:
    """Answers one request, then reads the next and closes without a word (keep-alive race)."""
    read_request(conn)
    conn.sendall(OK)
    read_request(conn)


def answer_then_junk(conn: socket.socket) -> None:
    read_request(conn)
    conn.sendall(OK)
    time.sleep(0.02)
    conn.sendall(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
    while read_request(conn):
        conn.sendall(OK)


def partial_then_reset(conn: socket.socket) -> None:
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part")
    time.sleep(0.02)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close


class RawServer:
    """A loopback socket server running ``handler`` once per connection, each in a thread."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.accepted = 0
        self.conns: list[socket.socket] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]

    def __enter__(self) -> str:
        self.threads[0].start()
        scheme = "https" if self.tls else "http"
        host = "localhost" if self.tls else "127.0.0.1"  # the test certificate names both
        return f"{scheme}://{host}:{self.sock.getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for conn in self.conns:  # wake handlers blocked on a keep-alive connection
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for t in self.threads:
            t.join(2)
        self.sock.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(2)
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.conns.append(conn)
            with conn:
                self.handler(conn)
        except OSError:  # the client went away; ssl.SSLError is an OSError too
            pass


@contextmanager
def full_listener() -> Iterator[int]:
    """A port whose accept queue is full: Linux drops further SYNs, so a connect hangs."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = int(listener.getsockname()[1])
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    try:
        yield port
    finally:
        for s in fillers:
            s.close()
        listener.close()


async def test_a_refused_connect_is_tried_once_more(
    pool: UpstreamPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a Service address a second connect lands on another pod; nothing was sent, so the
    retry is safe for a POST too. Here the listener appears right after the first refusal."""
    from tollgate_testkit.ports import free_port

    port = free_port()
    servers: list[asyncio.Server] = []

    async def answer(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await w.drain()
        w.close()
        await w.wait_closed()

    real_open = UpstreamPool._open

    async def open_then_listen(self: UpstreamPool, *args: object) -> object:
        try:
            return await real_open(self, *args)  # type: ignore[arg-type]
        except ConnectionRefusedError:
            if not servers:
                servers.append(await asyncio.start_server(answer, "127.0.0.1", port))
            raise

    monkeypatch.setattr(UpstreamPool, "_open", open_then_listen)
    try:
        r = await pool.request(f"http://127.0.0.1:{port}", "POST", "/v1/authorize", [], b"{}")
        assert (r.status, r.body) == (200, b"ok")
    finally:
        for s in servers:
            s.close()
            await s.wait_closed()
