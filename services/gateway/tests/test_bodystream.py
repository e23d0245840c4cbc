"""Streamed upstream bodies (bodystream.py, issue 14) through the pool, against the demo
upstream's blob modes on loopback: byte-exact, bounded in memory, and the connection's fate when
the body ends, is abandoned, or is cut short."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager

import pytest

from tollgate_gateway.bodystream import COMPLETE, HIGH_WATER, UPSTREAM_FAILED
from tollgate_gateway.client import UpstreamError, UpstreamPool, UpstreamResponse
from tollgate_testkit.fixtures import Upstream
from tollgate_testkit.upstream import blob_digest

Factory = Callable[..., Upstream]
MB = 1 << 20


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    p = UpstreamPool(buffer_bytes=MB, connect_timeout=1.0, max_per_origin=1)
    yield p
    await p.aclose()
    assert p.connections_closed == p.connections_opened, "a socket was leaked"


async def get(pool: UpstreamPool, origin: str) -> UpstreamResponse:
    return await pool.request(origin, "GET", "/blob", [])


async def digest(r: UpstreamResponse) -> tuple[int, str]:
    assert r.stream is not None
    h = hashlib.sha256()
    n = 0
    try:
        while chunk := await r.stream.next():
            h.update(chunk)
            n += len(chunk)
    finally:
        r.stream.close()
    return n, h.hexdigest()


async def test_a_large_body_arrives_byte_exact(
    pool: UpstreamPool, upstream_factory: Factory
) -> None:
    """A 20 MB body with a Content-Length streams through intact; the connection is reused."""
    up = upstream_factory(mode="blob")
    up.set("blob", size=20 * MB)
    r = await get(pool, up.url)
    assert r.stream is not None
    assert r.stream.length == 20 * MB
    assert await digest(r) == (20 * MB, blob_digest(20 * MB))
    r2 = await get(pool, up.url)  # max_per_origin=1: the slot came back too
    assert await digest(r2) == (20 * MB, blob_digest(20 * MB))
    assert pool.connections_opened == 1


async def test_a_chunked_body_streams(pool: UpstreamPool, upstream_factory: Factory) -> None:
    """A chunked body past the buffer streams intact, its length unknown."""
    up = upstream_factory(mode="blobchunked")
    up.set("blobchunked", size=5 * MB + 123)
    r = await get(pool, up.url)
    assert r.stream is not None
    assert r.stream.length is None
    assert await digest(r) == (5 * MB + 123, blob_digest(5 * MB + 123))


async def test_a_reader_that_waits_holds_back_the_upstream(
    pool: UpstreamPool, upstream_factory: Factory
) -> None:
    """Nobody reading: the stream stops reading the upstream near its high-water mark instead
    of buffering the 50 MB body."""
    up = upstream_factory(mode="blob")
    up.set("blob", size=50 * MB)
    r = await get(pool, up.url)
    assert r.stream is not None
    first = await r.stream.next()
    await asyncio.sleep(0.5)  # time for the upstream to push whatever it is allowed to
    assert 0 < r.stream.buffered + len(first) < HIGH_WATER + 2 * MB
    r.stream.close()


async def test_an_abandoned_stream_closes_its_connection(
    pool: UpstreamPool, upstream_factory: Factory
) -> None:
    """A consumer that stops mid-body closes the upstream connection (never pooled half read)
    and frees its slot: the next request gets a new connection."""
    up = upstream_factory(mode="blob")
    up.set("blob", size=20 * MB)
    r = await get(pool, up.url)
    assert r.stream is not None
    await r.stream.next()
    r.stream.close()
    assert pool.open_connections() == 0
    r2 = await asyncio.wait_for(get(pool, up.url), 5)  # max_per_origin=1: a leaked slot hangs
    assert await digest(r2) == (20 * MB, blob_digest(20 * MB))
    assert pool.connections_opened == 2


async def test_an_upstream_dying_mid_body_fails_the_stream(
    pool: UpstreamPool, upstream_factory: Factory
) -> None:
    """A reset halfway through raises from next(), reports upstream_failed, frees the slot."""
    up = upstream_factory(mode="blobdie")
    up.set("blobdie", size=10 * MB)
    r = await get(pool, up.url)
    assert r.stream is not None
    seen: list[str] = []
    r.stream.watch(lambda outcome, _exc: seen.append(outcome))
    with pytest.raises(UpstreamError):
        await digest(r)
    assert seen == [UPSTREAM_FAILED]
    assert pool.open_connections() == 0
    up.set("blob", size=2 * MB)
    r2 = await asyncio.wait_for(get(pool, up.url), 5)
    assert r2.stream is not None
    r2.stream.watch(lambda outcome, _exc: seen.append(outcome))
    assert await digest(r2) == (2 * MB, blob_digest(2 * MB))
    assert seen == [UPSTREAM_FAILED, COMPLETE]


@contextmanager
def stalling_server(sent: int, announced: int) -> Iterator[str]:
    """A server that announces ``announced`` bytes, sends ``sent`` of them, then goes quiet."""
    sock = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = sock.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % announced)
            conn.sendall(b"x" * sent)
            done.wait(10)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        done.set()
        t.join(5)
        sock.close()


async def test_an_upstream_going_quiet_mid_body_fails_the_stream(pool: UpstreamPool) -> None:
    """No byte within the stream's idle timeout (the proxy sets the route's timeoutSeconds):
    the stream fails as upstream_failed instead of hanging, and the connection is closed."""
    with stalling_server(2 * MB, 3 * MB) as origin:
        r = await get(pool, origin)
        assert r.stream is not None
        r.stream.idle_timeout = 0.3
        seen: list[str] = []
        r.stream.watch(lambda outcome, _exc: seen.append(outcome))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(digest(r), 10)
        assert seen == [UPSTREAM_FAILED]
        assert pool.open_connections() == 0
