"""The ASGI adapter (asgi.py) in-process against a real redis-server and real upstreams."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from tollgate_common.types import ASGIApp, Message
from tollgate_gateway.asgi import create_app
from tollgate_gateway.settings import GatewaySettings
from tollgate_testkit.fixtures import Upstream
from tollgate_testkit.ports import free_port
from tollgate_testkit.upstream import blob_digest

from .conftest import route_doc

Ups = Callable[..., Upstream]


@pytest.fixture
async def asgi_app(
    tmp_path: Path, redis_url: str, upstream_factory: Ups
) -> AsyncIterator[tuple[ASGIApp, Upstream]]:
    """The gateway as an ASGI app, its lifespan running, one cached route on a real upstream."""
    up = upstream_factory()
    routes = tmp_path / "routes.yaml"
    routes.write_text(route_doc("eod", "/eod", [up.url], cache={"ttlSeconds": 60}))
    settings = GatewaySettings(
        port=free_port(),
        host="127.0.0.1",
        redis_url=redis_url,
        routes_file=str(routes),
        max_request_body_bytes=100,
    )
    app = create_app(settings)
    async with app.gateway.lifespan():  # type: ignore[attr-defined]
        yield app, up


def client(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


async def test_a_proxied_get_is_a_miss_then_a_hit(asgi_app: tuple[ASGIApp, Upstream]) -> None:
    """A GET through the adapter reaches the upstream once; the second one is a cache hit."""
    app, up = asgi_app
    async with client(app) as c:
        first = await c.get("/api/v1/eod/AAPL")
        second = await c.get("/api/v1/eod/AAPL")
    assert (first.status_code, first.headers["x-cache"]) == (200, "MISS")
    assert (second.status_code, second.headers["x-cache"]) == (200, "HIT")
    assert first.json() == second.json()
    assert first.headers["content-length"] == str(len(first.content))
    assert await asyncio.to_thread(lambda: up.requests) == 1


async def test_other_paths_go_to_the_admin_app(asgi_app: tuple[ASGIApp, Upstream]) -> None:
    """/healthz is the FastAPI app's."""
    app, _ = asgi_app
    async with client(app) as c:
        r = await c.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": True}


async def test_a_body_over_the_limit_is_413(asgi_app: tuple[ASGIApp, Upstream]) -> None:
    """A body past max_request_body_bytes is the proxy's JSON 413, as on its own server."""
    app, up = asgi_app
    async with client(app) as c:
        r = await c.post("/api/v1/eod/AAPL", content=b"x" * 101)
    assert r.status_code == 413
    assert r.json() == {"status": False, "message": "request body over 100 bytes"}
    assert await asyncio.to_thread(lambda: up.requests) == 0


async def test_a_client_that_leaves_gets_nothing_and_frees_the_fetch(
    asgi_app: tuple[ASGIApp, Upstream],
) -> None:
    """A disconnect during a slow upstream call cancels it: no answer is sent and the coalesced
    fetch is gone from the flight table."""
    app, up = asgi_app
    await asyncio.to_thread(up.set, "slow", 30)
    leave = asyncio.Event()
    sent: list[Message] = []
    body_sent = False

    async def receive() -> Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await leave.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/eod/AAPL",
        "raw_path": b"/api/v1/eod/AAPL",
        "query_string": b"",
        "headers": [(b"host", b"gw")],
        "client": ("127.0.0.1", 5000),
        "scheme": "http",
    }
    call = asyncio.ensure_future(app(scope, receive, send))
    for _ in range(500):  # until the upstream call is on its way
        if await asyncio.to_thread(lambda: up.requests):
            break
        await asyncio.sleep(0.02)
    leave.set()
    await asyncio.wait_for(call, 20)
    assert sent == []
    assert len(app.gateway.proxy.coalescer) == 0  # type: ignore[attr-defined]


async def test_a_large_answer_streams_through_the_adapter(
    asgi_app: tuple[ASGIApp, Upstream],
) -> None:
    """An answer over the response buffer streams through ASGI byte-exact, with its length, and
    is not cached (the route caches; the second GET is a miss too)."""
    app, up = asgi_app
    size = 3 << 20
    await asyncio.to_thread(up.set, "blob", 0.0, size)
    async with client(app) as c:
        first = await c.get("/api/v1/eod/BLOB")
        second = await c.get("/api/v1/eod/BLOB")
    assert first.status_code == 200
    assert first.headers["content-length"] == str(size)
    assert hashlib.sha256(first.content).hexdigest() == blob_digest(size)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "MISS")
    assert await asyncio.to_thread(lambda: up.requests) == 2
