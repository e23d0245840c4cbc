"""A MEASUREMENT PROTOTYPE, not a server to deploy: the gateway's proxy path served straight from
an asyncio protocol over httptools' request parser, with no ASGI in between, to measure what the
server layer costs (py-spy puts uvicorn's Python at ~14% of a miss and ~25% of a hit).

It calls ``Proxy.handle`` with an ``Incoming`` exactly as the ASGI adapter does, and answers with
one ``write()``. It does what the bench needs and no more: keep-alive, pipelined requests in
order, request bodies, Connection: close, a disconnect ending the request; ``/healthz``; no Date
header, no header-size limits, no graceful drain. Run with the gateway's environment:
``python -m bench.leanserver`` (the bench row "tollgate miss lean" starts it).
"""

from __future__ import annotations

import asyncio
import signal
from collections import deque
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httptools
import uvloop

from tollgate_gateway.app import create_app
from tollgate_gateway.errors import PayloadTooLarge
from tollgate_gateway.proxy import PREFIX, Proxy
from tollgate_gateway.request import Incoming
from tollgate_gateway.settings import GatewaySettings

Request = tuple[str, bytes, list[tuple[bytes, bytes]], bytes, bool]
REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
HEALTHY = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\r\n"
    b'{"status": true}'
)


class LeanProtocol(asyncio.Protocol):
    def __init__(self, proxy: Proxy, loop: asyncio.AbstractEventLoop) -> None:
        self.proxy = proxy
        self.loop = loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.client = ""
        self.pending: deque[Request] = deque()
        self.busy = False
        self.gone = loop.create_future()
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.gone.done():
            self.gone.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            self.transport.close()

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", [], []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        body = b"".join(self._body)
        self.pending.append(
            (method, self._url, self._headers, body, self.parser.should_keep_alive())
        )
        if not self.busy:
            self.busy = True
            self.loop.create_task(self._serve())

    async def _serve(self) -> None:
        while self.pending and not self.gone.done():
            method, url, headers, body, keep = self.pending.popleft()
            out = await self._one(method, url, headers, body)
            if not keep:
                out = out.replace(b"\r\n", b"\r\nconnection: close\r\n", 1)
            self.transport.write(out)
            if not keep:
                self.transport.close()
                break
        self.busy = False

    async def _one(
        self, method: str, url: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> bytes:
        parsed = httptools.parse_url(url)
        raw_path = parsed.path
        path = unquote(raw_path.decode("latin-1"))
        if not path.startswith(PREFIX + "/"):
            if path == "/healthz":
                return HEALTHY
            return b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"

        async def read_body(limit: int) -> bytes:
            if len(body) > limit:
                raise PayloadTooLarge(f"request body over {limit} bytes")
            return body

        async def disconnected() -> None:
            await asyncio.shield(self.gone)

        req = Incoming(
            method,
            path,
            raw_path,
            parsed.query or b"",
            headers,
            self.client,
            "http",
            read_body,
            disconnected,
        )
        reply = await self.proxy.handle(req)
        if reply is None:
            return b""
        head = [b"HTTP/1.1 %d %s" % (reply.status, REASONS.get(reply.status, b""))]
        head += [b"%s: %s" % h for h in reply.headers]
        head.append(b"content-length: %d\r\n\r\n" % len(reply.body))
        return b"\r\n".join(head) + reply.body


async def serve() -> None:
    s = GatewaySettings()
    app = create_app(s)
    gw = app.gateway
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    loop.add_signal_handler(signal.SIGINT, stop.set_result, None)
    async with gw.lifespan(None):
        proxy = gw.proxy
        server = await loop.create_server(
            lambda: LeanProtocol(proxy, loop), s.host, s.port, backlog=2048
        )
        await stop
        server.close()


if __name__ == "__main__":
    uvloop.run(serve())
