"""A demo upstream API: end-of-day stock prices, with faults on demand.

A raw asyncio HTTP/1.1 server (httptools parser) rather than a framework, because tests need to do
what frameworks will not: hang, reset the connection, send invalid JSON, close after a response.

Behaviour is switched at run time with ``POST /_control`` and a JSON body::

    {"mode": "ok" | "slow" | "hang" | "reset" | "error500" | "badjson" | "statusfalse"
              | "notfound" | "close" | "chunked" | "nostore" | "big"
              | "blob" | "blobchunked" | "blobdie",
     "delay": 0.5,     # seconds, for "slow" (and added to every mode when set)
     "size": 1000000}  # bytes of padding, for "big"; of the body, for the blob modes

The blob modes serve ``size`` bytes of ``blob(size)`` (deterministic, every 64 KiB block
different, so a test can hash what arrived) without holding them whole, as fast as the client
reads: with a Content-Length (``blob``), chunked (``blobchunked``), or announcing ``size`` and
resetting the connection after half of it (``blobdie``: an upstream dying mid-body).

``GET /_control`` returns the counters and the last requests seen (method, target, headers), so
tests can assert what reached the upstream; ``POST`` answers with the counters only.
``GET /eod/<SYMBOL>`` serves deterministic data.

Run: ``python -m tollgate_testkit.upstream --port 9001 --name a``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import signal
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import httptools

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}
BLOCK = 64 << 10
_BASE = hashlib.shake_256(b"tollgate blob").digest(BLOCK)


def blob(size: int) -> Iterator[bytes]:
    """The blob modes' body in 64 KiB blocks: block i is its index (8 bytes) and a fixed tail."""
    for i, offset in enumerate(range(0, size, BLOCK)):
        block = i.to_bytes(8, "big") + _BASE[8:]
        yield block[: min(BLOCK, size - offset)]


def blob_digest(size: int) -> str:
    """sha256 of ``blob(size)``, for a test to compare with what it received."""
    h = hashlib.sha256()
    for block in blob(size):
        h.update(block)
    return h.hexdigest()


@dataclass
class State:
    name: str
    mode: str = "ok"
    delay: float = 0.0
    size: int = 0
    requests: int = 0
    seen: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))


def eod(symbol: str, query: str) -> dict[str, Any]:
    """A deterministic end-of-day bar for a symbol (the shape of the original EOD API)."""
    digest = hashlib.sha256(symbol.encode()).digest()
    close = 10 + int.from_bytes(digest[:2], "big") / 100
    return {
        "code": symbol,
        "date": "2026-11-23",
        "open": round(close * 0.99, 2),
        "high": round(close * 1.02, 2),
        "low": round(close * 0.97, 2),
        "close": close,
        "volume": int.from_bytes(digest[2:5], "big"),
        "query": query,
    }


def response(
    status: int, body: bytes, *, close: bool = False, extra: list[tuple[str, str]] | None = None
) -> bytes:
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'OK')}", "Content-Type: application/json"]
    head.append(f"Content-Length: {len(body)}")
    head += [f"{k}: {v}" for k, v in extra or []]
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class DemoProtocol(asyncio.Protocol):
    def __init__(self, state: State) -> None:
        self.state = state
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.queue: asyncio.Queue[tuple[str, str, list[tuple[str, str]], bytes, bool]] = (
            asyncio.Queue()
        )
        self.worker: asyncio.Task[None] | None = None
        self.writable = asyncio.Event()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.worker = asyncio.get_running_loop().create_task(self._serve())

    def connection_lost(self, exc: Exception | None) -> None:
        self.writable.set()
        if self.worker:
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport:
                self.transport.write(response(400, b'{"status": false}', close=True))
                self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", [], bytearray()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        keep = self.parser.should_keep_alive()
        self.queue.put_nowait(
            (method, self.url.decode("latin-1"), self.headers, bytes(self.body), keep)
        )

    async def _serve(self) -> None:
        while True:
            method, target, headers, body, keep = await self.queue.get()
            if not await self._handle(method, target, headers, body, keep):
                return

    async def _handle(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, keep: bool
    ) -> bool:
        assert self.transport is not None
        st = self.state
        path, _, query = target.partition("?")
        if path == "/_control":
            return self._control(method, body, keep)
        st.requests += 1
        st.seen.append({"method": method, "target": target, "headers": dict(headers)})
        if st.delay or st.mode == "slow":
            await asyncio.sleep(st.delay or 1.0)
        mode = st.mode
        if mode == "hang":
            await asyncio.Event().wait()
        if mode == "reset":
            sock = self.transport.get_extra_info("socket")
            if sock is not None:  # SO_LINGER 0: close sends RST instead of FIN
                import socket
                import struct

                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()
            return False
        if path == "/healthz":
            self.transport.write(response(200, b'{"status": true}', close=not keep))
            return keep
        if mode.startswith("blob"):
            return await self._blob(mode, st.size, keep)
        status, payload, extra = 200, b"", []
        symbol = path.rstrip("/").rsplit("/", 1)[-1] or "INDEX"
        doc: dict[str, Any] = {
            "status": True,
            "data": eod(symbol.upper(), query),
            "server": st.name,
        }
        if mode == "error500":
            status, doc = 500, {"status": False, "message": "upstream exploded", "server": st.name}
        elif mode == "statusfalse":
            doc = {"status": False, "message": "no data for symbol", "server": st.name}
        elif mode == "notfound":  # the "no data" answer as a 404
            status, doc = 404, {"status": False, "message": "no data for symbol", "server": st.name}
        elif mode == "big":
            doc["padding"] = "x" * st.size
        elif mode == "nostore":
            extra.append(("Cache-Control", "no-store"))
        payload = b"{not json" if mode == "badjson" else json.dumps(doc).encode()
        if mode == "chunked":
            self._write_chunked(payload, keep)
            return keep
        close = mode == "close" or not keep
        self.transport.write(response(status, payload, close=close, extra=extra))
        if close:
            self.transport.close()
            return False
        return True

    async def _blob(self, mode: str, size: int, keep: bool) -> bool:
        assert self.transport is not None
        t = self.transport
        chunked = mode == "blobchunked"
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
        close = "" if keep else "Connection: close\r\n"
        t.write(
            f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n{framing}\r\n"
            f"{close}\r\n".encode()
        )
        sent = 0
        for block in blob(size):
            if mode == "blobdie" and sent >= size // 2:
                await asyncio.sleep(0.05)  # let what was written leave before the reset
                t.abort()
                return False
            t.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
            sent += len(block)
            await self.writable.wait()  # as fast as the client reads, never all at once
            if t.is_closing():
                return False
        if chunked:
            t.write(b"0\r\n\r\n")
        if not keep:
            t.close()
        return keep

    def _write_chunked(self, payload: bytes, keep: bool) -> None:
        assert self.transport is not None
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        out = bytearray((head + ("" if keep else "Connection: close\r\n") + "\r\n").encode())
        for i in range(0, len(payload), 7):  # small chunks on purpose: parsers must join them
            part = payload[i : i + 7]
            out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
        out += b"0\r\n\r\n"
        self.transport.write(bytes(out))
        if not keep:
            self.transport.close()

    def _control(self, method: str, body: bytes, keep: bool) -> bool:
        assert self.transport is not None
        st = self.state
        if method == "POST":
            cfg = json.loads(body or b"{}")
            st.mode = cfg.get("mode", "ok")
            st.delay = float(cfg.get("delay", 0.0))
            st.size = int(cfg.get("size", 0))
            if cfg.get("reset_counters"):
                st.requests = 0
                st.seen.clear()
        out: dict[str, Any] = {
            "name": st.name,
            "mode": st.mode,
            "delay": st.delay,
            "requests": st.requests,
        }
        # Only a GET lists the requests seen: a POST is someone switching modes by hand (make
        # run's banner), who wants one line back, not the last 50 requests' headers (~10 KB).
        if method != "POST":
            out["seen"] = list(st.seen)
        self.transport.write(response(200, json.dumps(out).encode(), close=not keep))
        if not keep:
            self.transport.close()
        return keep


async def serve(host: str, port: int, name: str, mode: str = "ok") -> None:
    loop = asyncio.get_running_loop()
    state = State(name=name, mode=mode)
    server = await loop.create_server(lambda: DemoProtocol(state), host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9001)
    ap.add_argument("--name", default="demo")
    ap.add_argument("--mode", default="ok")
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency, but the server works without
        pass
    asyncio.run(serve(args.host, args.port, args.name, args.mode))


if __name__ == "__main__":
    main()
