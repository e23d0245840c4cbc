"""The upstream pool against real servers on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Callable

import pytest

from tollgate_gateway.client import UpstreamError, UpstreamPool
from tollgate_testkit.fixtures import Upstream

Factory = Callable[..., Upstream]


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    p = UpstreamPool(max_body_bytes=1 << 20, connect_timeout=1.0)
    yield p
    await p.aclose()


async def get(pool: UpstreamPool, up: Upstream, path: str = "/eod/AAPL"):  # type: ignore[no-untyped-def]
    return await pool.request(up.url, "GET", path, [(b"accept", b"application/json")])


async def test_keep_alive_reuses_one_connection(
    pool: UpstreamPool, upstream_factory: Factory
) -> None:
    """Sequential requests share one connection."""
    up = upstream_factory()
    for _ in range(20):
        r = await get(pool, up)
        assert r.status == 200
    assert pool.connections_opened == 1


async def test_concurrent_requests_open_parallel_connections(
    pool: UpstreamPool, upstream_factory: Factory
) -> None:
    """Concurrency opens connections as needed and all answers arrive intact."""
    up = upstream_factory()
    results = await asyncio.gather(*(get(pool, up, f"/eod/S{i}") for i in range(30)))
    assert [r.status for r in results] == [200] * 30
    assert all(f'"S{i}"'.encode() in r.body for i, r in enumerate(results))


async def test_connection_close_is_honoured(pool: UpstreamPool, upstream_factory: Factory) -> None:
    """A server that says Connection: close gets a new connection per request."""
    up = upstream_factory(mode="close")
    for _ in range(3):
        assert (await get(pool, up)).status == 200
    assert pool.connections_opened == 3


async def test_chunked_bodies_are_joined(pool: UpstreamPool, upstream_factory: Factory) -> None:
    """A chunked answer arrives whole and the connection is reused."""
    up = upstream_factory(mode="chunked")
    r1 = await get(pool, up)
    r2 = await get(pool, up)
    assert r1.body == r2.body
    assert r1.body.startswith(b'{"status": true')
    assert pool.connections_opened == 1


async def test_large_body_within_cap(pool: UpstreamPool, upstream_factory: Factory) -> None:
    """A body of several hundred kilobytes arrives intact."""
    up = upstream_factory(mode="big")
    up.set("big", size=500_000)
    r = await get(pool, up)
    assert len(r.body) > 500_000
    assert r.body.endswith(b'"}')


async def test_body_over_cap_is_an_error(pool: UpstreamPool, upstream_factory: Factory) -> None:
    """A body larger than max_body_bytes raises instead of filling memory."""
    up = upstream_factory(mode="big")
    up.set("big", size=2 << 20)
    with pytest.raises(UpstreamError, match="too large"):
        await get(pool, up)


async def test_reset_is_an_error(pool: UpstreamPool, upstream_factory: Factory) -> None:
    """A reset connection raises UpstreamError."""
    up = upstream_factory(mode="reset")
    with pytest.raises(UpstreamError):
        await get(pool, up)
    assert pool.open_connections() == 0


async def test_refused_is_an_error(pool: UpstreamPool) -> None:
    """Nothing listening raises UpstreamError."""
    with pytest.raises(UpstreamError, match="failed"):
        await pool.request("http://127.0.0.1:1", "GET", "/", [])


async def test_cancellation_closes_the_connection(
    pool: UpstreamPool, upstream_factory: Factory
) -> None:
    """A caller's deadline closes the connection; it never returns to the pool."""
    up = upstream_factory(mode="hang")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await get(pool, up)
    await asyncio.sleep(0)
    assert pool.open_connections() == 0
    up.set("ok")
    assert (await get(pool, up)).status == 200


async def test_head_has_no_body(pool: UpstreamPool, upstream_factory: Factory) -> None:
    """HEAD answers end at the headers even with a Content-Length."""
    up = upstream_factory()
    # The demo upstream answers HEAD like GET (body included), which is wrong for HEAD; use a
    # raw server instead.
    del up
    with raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n") as port:
        r = await asyncio.wait_for(pool.request(f"http://127.0.0.1:{port}", "HEAD", "/", []), 2)
    assert r.status == 200
    assert r.body == b""


async def test_read_until_close_body(pool: UpstreamPool) -> None:
    """An answer without length or chunking ends when the server closes."""
    with raw_server(b"HTTP/1.1 200 OK\r\n\r\nhello world", close=True) as port:
        r = await pool.request(f"http://127.0.0.1:{port}", "GET", "/", [])
    assert r.body == b"hello world"


async def test_stale_pooled_connection_is_retried(pool: UpstreamPool) -> None:
    """A keep-alive connection the server closed while idle is retried once on a fresh one."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    with raw_server(answer, close=True) as port:
        origin = f"http://127.0.0.1:{port}"
        assert (await pool.request(origin, "GET", "/", [])).body == b"ok"
        await asyncio.sleep(0.05)  # the server has closed the connection we pooled
        assert (await pool.request(origin, "GET", "/", [])).body == b"ok"


async def test_garbage_is_a_protocol_error(pool: UpstreamPool) -> None:
    """Bytes that are not HTTP raise UpstreamError."""
    with raw_server(b"SSH-2.0-OpenSSH\r\n\r\n") as port, pytest.raises(UpstreamError):
        await pool.request(f"http://127.0.0.1:{port}", "GET", "/", [])


class raw_server:
    """A socket server that answers every request with fixed bytes."""

    def __init__(self, answer: bytes, close: bool = False) -> None:
        self.answer = answer
        self.close = close
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> int:
        self.thread.start()
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(65536)
                    conn.sendall(self.answer)
                    if not self.close:
                        conn.recv(65536)
                except OSError:
                    pass
