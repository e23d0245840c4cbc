"""The services' HTTP/1.1 server (http/server.py) under generated request heads on a raw socket:
whatever arrives, the answers are 4xx at worst (never a 5xx or a traceback), the connection is
answered or closed (never left hanging), and the server stays up.

Bounded: a fixed number of examples on one server in a thread of its own, with timeouts and a
sweep short enough that every connection ends within a fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import TypeVar

import orjson
import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tollgate_common.http import server as httpserver
from tollgate_common.http.exchange import Incoming, Reply
from tollgate_common.http.server import HttpServer, Limits

pytestmark = pytest.mark.slow
T = TypeVar("T")

READ_BOUND_SECONDS = 10.0  # far past every server timeout below: reaching it is a hang
STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) ")


async def echo(req: Incoming) -> Reply:
    body = await req.read_body(1 << 20)
    # Lengths only: nothing a client sent is echoed, so no body can look like a status line.
    doc = {"path": len(req.path), "query": len(req.query_string), "body": len(body)}
    return Reply(200, [(b"content-type", b"application/json")], orjson.dumps(doc))


class Recorder(logging.Handler):
    """Every record at WARNING or above, and every one that carries a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.bad: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.bad.append(record)


class ServerThread:
    """One HttpServer on its own uvloop in a thread, timeouts short so connections end fast."""

    def __init__(self) -> None:
        self.port = 0
        self.started = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Future[None] | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.started.wait(10), "server did not start"

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.stop = self.loop.create_future()
            limits = Limits(
                max_header_bytes=4096,
                max_body_bytes=1000,
                keep_alive_seconds=0.05,
                header_timeout_seconds=0.05,
            )
            server = HttpServer(echo, limits, access_log=False)

            def listening(port: int) -> None:
                self.port = port
                self.started.set()

            await server.run("127.0.0.1", 0, self.stop, grace_seconds=1.0, on_listen=listening)

        uvloop.run(main())

    def close(self) -> None:
        if self.loop is not None and self.stop is not None:
            stop = self.stop

            def done() -> None:
                if not stop.done():
                    stop.set_result(None)

            self.loop.call_soon_threadsafe(done)
        self.thread.join(10)


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[tuple[ServerThread, Recorder]]:
    """The server under fuzz, with a recorder on the library's loggers."""
    mp = pytest.MonkeyPatch()
    mp.setattr(httpserver, "SWEEP_SECONDS", 0.01)  # idle and half-sent connections end at once
    recorder = Recorder()
    logger = logging.getLogger("tollgate_common")
    logger.addHandler(recorder)
    server = ServerThread()
    yield server, recorder
    server.close()
    logger.removeHandler(recorder)
    mp.undo()


def exchange(port: int, data: bytes) -> tuple[bytes, bool]:
    """Send ``data`` and read until the server closes; also whether it did within the bound."""
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=READ_BOUND_SECONDS) as sock:
        with contextlib.suppress(OSError):  # the server answered and closed before the end
            sock.sendall(data)
        until = time.monotonic() + READ_BOUND_SECONDS
        while time.monotonic() < until:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return bytes(received), True
            except TimeoutError:
                break
            if not chunk:
                return bytes(received), True
            received += chunk
    return bytes(received), False


def statuses(raw: bytes) -> list[int]:
    """Statuses of the responses in ``raw``. Status lines are found by pattern, not framed: a
    HEAD answer announces a length it does not send. No body can hold one (the echo's JSON
    carries lengths only)."""
    assert not raw or raw.startswith(b"HTTP/1.1 "), raw[:80]
    return [int(code) for code in STATUS_LINE.findall(raw)]


def mostly(common: st.SearchStrategy[T], odd: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """Nine draws in ten from ``common`` (and shrinking towards it): a head needs most parts
    right for the parser to pass it on, and the bugs worth finding sit behind the parser."""
    return st.sampled_from([common] * 9 + [odd]).flatmap(lambda chosen: chosen)


# What a request head is made of, the odd alongside the ordinary.
METHODS = mostly(
    st.sampled_from(
        [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"PRI"]
    ),
    st.binary(min_size=1, max_size=8),
)
ODD = mostly(
    st.sampled_from(
        [b"a", b"%", b"%zz", b"%2F", b"%2e", b"%00", b"..", b".", b"\\", b";", b"?a=%", b"#f", b"~"]
    )
    | st.text("abc-._~!$&'()*+,;=:@%/?", max_size=6).map(str.encode),
    st.binary(max_size=12),
)
TARGETS = mostly(
    st.sampled_from(
        [
            b"/",
            b"*",
            b"http://",
            b"http://h",
            b"http://[::1/x",
            b"http://h:99999/",
            b"http://u@h:8/p?q",
            b"host:443",
            b"//x",
            b"/a?b#c",
        ]
    )
    | st.lists(ODD, max_size=4).map(lambda parts: b"/" + b"/".join(parts)),
    st.binary(max_size=16),
)
VERSIONS = mostly(
    st.sampled_from([b" HTTP/1.1", b" HTTP/1.0"]),
    st.sampled_from([b" HTTP/0.9", b" HTTP/2.0", b" HTTP/1.2", b"", b" http/1.1"])
    | st.binary(max_size=10),
)
NAMES = mostly(
    st.sampled_from(
        [
            b"host",
            b"Host",
            b"content-length",
            b"transfer-encoding",
            b"expect",
            b"connection",
            b"upgrade",
            b"x-a",
        ]
    ),
    st.binary(min_size=1, max_size=10),
)
VALUES = mostly(
    st.sampled_from(
        [
            b"t",
            b"",
            b"0",
            b"5",
            b"-1",
            b"99999999999999999999",
            b"chunked",
            b"gzip, chunked",
            b"100-continue",
            b"close",
            b"upgrade",
            b"h2c",
        ]
    ),
    st.binary(max_size=16),
)
CHUNKS = st.lists(st.binary(max_size=20), max_size=3).map(
    lambda parts: b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
)
BODIES = st.just(b"") | st.binary(max_size=40) | CHUNKS


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """One request: line, headers, body, with LF or CRLF line ends."""
    eol = draw(mostly(st.just(b"\r\n"), st.just(b"\n")))
    line = draw(METHODS) + b" " + draw(TARGETS) + draw(VERSIONS) + eol
    headers = draw(st.lists(st.tuples(NAMES, VALUES), max_size=4))
    if draw(mostly(st.just(True), st.just(False))):
        headers.append((b"host", b"t"))
    head = line + b"".join(n + b": " + v + eol for n, v in headers) + eol
    return head + draw(BODIES)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Up to three pipelined requests, maybe cut short anywhere."""
    data = b"".join(draw(st.lists(requests(), min_size=1, max_size=3)))
    if draw(mostly(st.just(False), st.just(True))):
        data = data[: draw(st.integers(0, len(data)))]
    return data


@settings(
    max_examples=200,
    deadline=None,
    database=None,  # nothing written into the work tree; a failure prints its example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=streams())
def test_no_request_head_gets_a_5xx_a_traceback_or_a_hang(
    fuzzed: tuple[ServerThread, Recorder], data: bytes
) -> None:
    """Whatever the bytes: only answers below 500, nothing logged as an error, the connection
    ends, and the server then answers a plain request."""
    server, recorder = fuzzed
    recorder.bad.clear()  # one example's error must not fail the ones shrinking after it
    raw, ended = exchange(server.port, data)
    assert ended, "the connection was neither answered to the end nor closed"
    assert all(status < 500 for status in statuses(raw)), raw
    assert recorder.bad == []
    raw, ended = exchange(server.port, b"GET /ok HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
    assert ended
    assert statuses(raw) == [200]
