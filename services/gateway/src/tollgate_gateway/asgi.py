"""The gateway as an ASGI app, for ASGI servers (uvicorn, granian): the bench's variant rows.

Production serves on its own HTTP server (app.serve) and the proxy has one interface,
``Incoming -> Reply`` (issue 15). This adapter turns an ASGI request into an ``Incoming`` the way
that server does: the body read whole within the limit, and a client that leaves cancels the
request's task with ``gone`` set, so the proxy tells that cancellation apart exactly as it does
there. Nothing here is on the production path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from tollgate_common.http.exchange import BodyTooLarge, Incoming, Reply
from tollgate_common.logging import configure_logging
from tollgate_common.types import ASGIApp, Receive, Scope, Send
from tollgate_gateway.app import Gateway
from tollgate_gateway.proxy import PREFIX_SLASH, Proxy
from tollgate_gateway.request import ClientGone
from tollgate_gateway.settings import GatewaySettings

WATCH_AFTER = 0.05  # seconds; a request answered sooner never pays for a watcher task


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body; BodyTooLarge past ``limit``, ClientGone on a disconnect."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"request body over {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


async def serve_proxy(proxy: Proxy, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    """One proxied request over ASGI."""
    too_large: BodyTooLarge | None = None
    try:
        body = await read_body(receive, limit)
    except BodyTooLarge as exc:  # answered by the proxy, as its own server's requests are
        body, too_large = b"", exc
    except ClientGone:
        return

    async def body_within(n: int) -> bytes:
        if too_large is not None:
            raise too_large
        if len(body) > n:
            raise BodyTooLarge(f"request body over {n} bytes")
        return body

    watch = _Watch(receive)
    req = Incoming(
        scope["method"],
        scope["path"],
        scope.get("raw_path") or scope["path"].encode(),
        scope["query_string"],
        scope["headers"],
        client_ip(scope),
        scope.get("scheme", "http"),
        body_within,
        lambda: wait_disconnect(receive),
        watch.is_gone,
    )
    reply = await watch.run(proxy.handle(req))
    if reply is None:
        return
    if reply.stream is not None:
        await send_stream(reply, send)
        return
    reply.headers.append((b"content-length", b"%d" % len(reply.body)))
    await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
    await send({"type": "http.response.body", "body": reply.body})


async def send_stream(reply: Reply, send: Send) -> None:
    """A streamed body, chunk by chunk (the ASGI server's ``send`` applies its back-pressure).
    An upstream failing mid-body raises: the server then closes the connection."""
    source = reply.stream
    assert source is not None
    if source.length is not None:
        reply.headers.append((b"content-length", b"%d" % source.length))
    try:
        start = {"type": "http.response.start", "status": reply.status, "headers": reply.headers}
        await send(start)
        while chunk := await source.next():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        source.close()


class _Watch:
    """Runs a request's work in its task; a client that disconnects cancels it with ``gone``
    set, the way the gateway's own server does. The watcher needs a task blocked on
    ``receive()``, so it starts only for requests still running after WATCH_AFTER (a timer
    costs less than a task)."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.gone = False

    def is_gone(self) -> bool:
        return self.gone

    async def run(self, work: Awaitable[Reply | None]) -> Reply | None:
        me = asyncio.current_task()
        assert me is not None
        watcher: asyncio.Task[None] | None = None

        async def watch() -> None:
            await wait_disconnect(self.receive)
            self.gone = True
            me.cancel()

        def start_watch() -> None:
            nonlocal watcher
            watcher = asyncio.ensure_future(watch())

        timer = asyncio.get_running_loop().call_later(WATCH_AFTER, start_watch)
        try:
            return await work
        except asyncio.CancelledError:
            if not self.gone:
                raise
            me.uncancel()  # the proxy settled the request (refunds included); nobody to answer
            return None
        finally:
            timer.cancel()
            if watcher is not None:
                watcher.cancel()


def create_app(settings: GatewaySettings) -> ASGIApp:
    """The ASGI app: ``/api/v1/...`` to the proxy, the rest (probes, metrics) to FastAPI, whose
    lifespan opens the gateway's pools."""
    gw = Gateway(settings)
    admin = gw.admin
    limit = settings.max_request_body_bytes

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        proxy = gw.proxy
        if scope["type"] == "http" and proxy is not None and scope["path"].startswith(PREFIX_SLASH):
            await serve_proxy(proxy, scope, receive, send, limit)
        else:
            await admin(scope, receive, send)

    app.gateway = gw  # type: ignore[attr-defined]  # for tests and debugging
    return app


def main_app() -> ASGIApp:
    """The ASGI servers' factory: settings from the environment, validated once."""
    settings = GatewaySettings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
