"""Large answers stream through a real gateway process (issue 14): byte-exact, with the gateway's
memory flat while many clients pull slowly, and the right end when the client or the upstream
goes away mid-body. Redis, two auth services, two gateways and demo upstreams in their blob modes,
all real processes on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tollgate_common.contracts.events import STREAM_KEY
from tollgate_testkit.upstream import blob_digest
from tollgate_testkit.upstreams import Upstream

from .conftest import Stack, open_stack

MB = 1 << 20
CLIENTS = 40  # slow clients pulling 10 MB each at once
RSS_GROWTH_BOUND = 160 * MB  # holding the bodies whole (the old way) is CLIENTS x 10 MB = 400 MB


def route(name: str, prefix: str, urls: list[str], extra: str = "") -> str:
    endpoints = ", ".join(f'{{url: "{u}"}}' for u in urls)
    return f"""
apiVersion: tollgate.dev/v1alpha1
kind: ApiBackend
metadata: {{name: {name}, namespace: default}}
spec:
  pathPrefix: {prefix}
  endpoints: [{endpoints}]
  creditCost: 1
  successWhen: http2xx
  {extra}
---"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work: Path = tmp_path_factory.mktemp("streaming")
    blob = Upstream("blob", work, mode="blob")
    blob2 = Upstream("blob2", work, mode="blob")
    chunked = Upstream("chunked", work, mode="blobchunked")
    dying = Upstream("dying", work, mode="blobdie")
    gone = Upstream("gone", work, mode="blob")
    ups = [blob, blob2, chunked, dying, gone]
    for up, mode, size in (
        (blob, "blob", 10 * MB),
        (blob2, "blob", 10 * MB),
        (chunked, "blobchunked", 10 * MB),
        (dying, "blobdie", 10 * MB),
        (gone, "blob", 20 * MB),
    ):
        up.set(mode, size=size)
    routes = "".join(
        [
            route("blob", "/blob", [blob.url]),
            route("cachedblob", "/cachedblob", [blob.url], "cache: {ttlSeconds: 60}"),
            route("race", "/race", [blob.url, blob2.url], "strategy: race"),
            route("chunked", "/chunked", [chunked.url]),
            route("dying", "/dying", [dying.url]),
            route("gone", "/gone", [gone.url]),
        ]
    )
    with open_stack(work, "http", routes, ups) as s:
        yield s


def pull(stack: Stack, path: str, key: str) -> tuple[httpx.Response, int, str]:
    """GET through the first gateway; the answer, the body's length and sha256."""
    h = hashlib.sha256()
    n = 0
    url = f"{stack.gateways[0].url}/api/v1{path}"
    with httpx.stream("GET", url, params={"api_key": key}, timeout=60) as r:
        for chunk in r.iter_raw(1 << 16):
            h.update(chunk)
            n += len(chunk)
    return r, n, h.hexdigest()


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def established(port: int) -> int:
    """Open TCP connections on a local listening port (its accepted sockets)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    count += 1
    return count


def metric(stack: Stack, route: str, result: str) -> float:
    name = "tollgate_gateway_streamed_responses_total"
    return stack.gateway_metric(name, route=f"default/{route}", result=result)


def eventually(check: object, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.parametrize("size", [10 * MB, 100 * MB])
def test_large_answers_arrive_byte_exact(stack: Stack, size: int) -> None:
    """10 MB and 100 MB answers (the old whole-body cap was 64 MiB) arrive byte-exact."""
    _, key = stack.new_key(10)
    stack.upstreams[0].set("blob", size=size)
    try:
        r, n, digest = pull(stack, "/blob/x", key)
    finally:
        stack.upstreams[0].set("blob", size=10 * MB)
    assert r.status_code == 200
    assert r.headers["content-length"] == str(size)
    assert r.headers["x-cache"] == "MISS"
    assert (n, digest) == (size, blob_digest(size))
    eventually(lambda: metric(stack, "blob", "complete") >= 1, "no complete stream counted")


def test_chunked_answers_stream(stack: Stack) -> None:
    """A chunked upstream answer streams through chunked, byte-exact."""
    _, key = stack.new_key(10)
    r, n, digest = pull(stack, "/chunked/x", key)
    assert r.status_code == 200
    assert r.headers["transfer-encoding"] == "chunked"
    assert (n, digest) == (10 * MB, blob_digest(10 * MB))


def test_a_race_streams_its_winner(stack: Stack) -> None:
    """A race of two upstreams picks one on its head and streams it whole."""
    _, key = stack.new_key(10)
    r, n, digest = pull(stack, "/race/x", key)
    assert r.status_code == 200
    assert (n, digest) == (10 * MB, blob_digest(10 * MB))


def test_streamed_answers_are_not_cached(stack: Stack) -> None:
    """An answer over the response buffer is not stored, even on a caching route."""
    _, key = stack.new_key(10)
    before = stack.upstreams[0].requests
    first, _, _ = pull(stack, "/cachedblob/x", key)
    second, n2, d2 = pull(stack, "/cachedblob/x", key)
    assert first.headers["x-cache"] == second.headers["x-cache"] == "MISS"
    assert (n2, d2) == (10 * MB, blob_digest(10 * MB))
    assert stack.upstreams[0].requests == before + 2


async def slow_pull(port: int, path: str, key: str, pause: float) -> tuple[int, str]:
    """A client with a small receive buffer reading 64 KiB at a time with pauses."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 16)
    writer.write(
        f"GET /api/v1{path}?api_key={key} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    h = hashlib.sha256()
    n = 0
    while chunk := await reader.read(1 << 16):
        h.update(chunk)
        n += len(chunk)
        await asyncio.sleep(pause)
    writer.close()
    return n, h.hexdigest()


def test_memory_stays_flat_while_many_clients_pull_slowly(stack: Stack) -> None:
    """40 slow clients each pulling 10 MB at once: the gateway's RSS grows by far less than
    the bodies (held whole, they would be 400 MB)."""
    _, key = stack.new_key(CLIENTS + 10)
    gw = stack.gateways[0]
    pull(stack, "/blob/warm", key)  # the allocator's arenas for one stream exist already
    baseline = rss(gw.proc.pid)
    peak = baseline

    async def run() -> list[tuple[int, str]]:
        nonlocal peak
        clients = asyncio.gather(
            *(slow_pull(gw.port, f"/blob/c{i}", key, 0.004) for i in range(CLIENTS))
        )
        while not clients.done():
            peak = max(peak, rss(gw.proc.pid))
            await asyncio.wait([clients], timeout=0.05)
        return await clients

    results = asyncio.run(asyncio.wait_for(run(), 180))
    assert results == [(10 * MB, blob_digest(10 * MB))] * CLIENTS
    assert peak - baseline < RSS_GROWTH_BOUND, f"RSS grew {(peak - baseline) / MB:.0f} MB"


def test_a_client_leaving_mid_body_frees_the_upstream_connection(stack: Stack) -> None:
    """A client that hangs up mid-body: the upstream connection is closed (not pooled half
    read, not left paused), the charge stands, and the next request is served."""
    key_id, key = stack.new_key(10)
    gone = stack.upstreams[4]
    gw = stack.gateways[0]
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", gw.port)) as s:
            s.sendall(f"GET /api/v1/gone/x?api_key={key} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
            got = 0
            while got < 2 * MB:
                got += len(s.recv(1 << 16))
    eventually(lambda: metric(stack, "gone", "client_gone") >= 3, "client_gone not counted")
    eventually(lambda: established(gone.port) == 0, "an abandoned upstream connection stayed")
    _, n, digest = pull(stack, "/gone/x", key)
    assert (n, digest) == (20 * MB, blob_digest(20 * MB))
    assert established(gone.port) <= 1  # the one pooled again after its body was read
    time.sleep(0.5)  # a refund, were one wrongly owed, lands within this on loopback
    assert stack.credits(key_id) == 10 - 4


def test_an_upstream_dying_mid_body_closes_the_client_and_refunds(stack: Stack) -> None:
    """The upstream resets halfway: the client sees its connection closed before the announced
    length (not a hang), the failure is counted and sent as an event, and the charge refunded."""
    key_id, key = stack.new_key(10)
    with pytest.raises(httpx.RemoteProtocolError):
        pull(stack, "/dying/x", key)
    assert metric(stack, "dying", "upstream_failed") == 1
    eventually(lambda: stack.credits(key_id) == 10, "the cut-off answer was not refunded")
    client = redis.Redis.from_url(stack.redis.url)

    def reported() -> bool:
        return any(
            f[b"type"] == b"upstream.failed" and f.get(b"route") == b"default/dying"
            for _, f in client.xrange(STREAM_KEY)
        )

    eventually(reported, "no upstream.failed event for the route")
