"""The services' HTTP/1.1 server (http/server.py) against raw sockets: what a front server owes its
clients, one behaviour per test."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest

from tollgate_common.http.connection import Refusal, render, request_target
from tollgate_common.http.exchange import Handler, Incoming, Reply
from tollgate_common.http.server import HttpServer, Limits


async def echo(req: Incoming) -> Reply:
    if req.path == "/slow":
        await asyncio.sleep(0.2)
    if req.path == "/boom":
        raise ValueError("a bug")
    body = await req.read_body(1 << 20)
    doc = {"method": req.method, "path": req.path, "query": req.query_string.decode()}
    doc["body"] = body.decode()
    return Reply(200, [(b"content-type", b"application/json")], orjson.dumps(doc))


@asynccontextmanager
async def running(handler: Handler = echo, **limits: float) -> AsyncIterator[HttpServer]:
    server = HttpServer(handler, Limits(**limits), access_log=True)  # type: ignore[arg-type]
    await server.listen("127.0.0.1", 0)
    try:
        yield server
    finally:
        for w in _clients:
            w.close()
            with contextlib.suppress(OSError):
                await w.wait_closed()
        _clients.clear()
        await server.shutdown(1.0)


_clients: list[asyncio.StreamWriter] = []


async def connect(server: HttpServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    r, w = await asyncio.open_connection("127.0.0.1", server.port)
    _clients.append(w)  # closed when the server stops
    return r, w


async def read_response(r: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, value = line.split(":", 1)
            headers[name.lower()] = value.strip()
    body = await r.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def closed(r: asyncio.StreamReader, within: float = 5.0) -> bool:
    try:
        return await asyncio.wait_for(r.read(), within) == b""
    except ConnectionResetError:
        return True


async def test_keep_alive_serves_many_requests_on_one_connection() -> None:
    async with running() as server:
        r, w = await connect(server)
        for i in range(3):
            w.write(f"GET /a/{i}?x=1 HTTP/1.1\r\nhost: t\r\n\r\n".encode())
            status, headers, body = await read_response(r)
            assert status == 200
            assert orjson.loads(body)["path"] == f"/a/{i}"
            assert "date" in headers
            assert "connection" not in headers
        w.close()


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with running() as server:
        r, w = await connect(server)
        w.write(
            b"GET /slow HTTP/1.1\r\nhost: t\r\n\r\n"
            b"GET /two HTTP/1.1\r\nhost: t\r\n\r\n"
            b"GET /three HTTP/1.1\r\nhost: t\r\n\r\n"
        )
        paths = [orjson.loads((await read_response(r))[2])["path"] for _ in range(3)]
        assert paths == ["/slow", "/two", "/three"]
        w.close()


async def test_connection_close_is_honoured() -> None:
    async with running() as server:
        r, w = await connect(server)
        w.write(b"GET /x HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        status, headers, _ = await read_response(r)
        assert status == 200
        assert headers["connection"] == "close"
        assert await closed(r)


async def test_http10_gets_one_answer_per_connection() -> None:
    async with running() as server:
        r, w = await connect(server)
        w.write(b"GET /x HTTP/1.0\r\n\r\n")
        status, headers, _ = await read_response(r)
        assert status == 200
        assert headers["connection"] == "close"
        assert await closed(r)


async def test_chunked_request_body_arrives_whole() -> None:
    async with running() as server:
        r, w = await connect(server)
        w.write(
            b"POST /b HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        status, _, body = await read_response(r)
        assert status == 200
        assert orjson.loads(body)["body"] == "hello world"
        w.close()


async def test_expect_100_continue_is_answered_before_the_body() -> None:
    async with running() as server:
        r, w = await connect(server)
        w.write(b"POST /b HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n")
        interim = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        w.write(b"ok")
        status, _, body = await read_response(r)
        assert status == 200
        assert orjson.loads(body)["body"] == "ok"
        w.close()


@pytest.mark.parametrize("chunked", [False, True])
async def test_body_over_the_limit_is_413_json(chunked: bool) -> None:
    async with running(max_body_bytes=10) as server:
        r, w = await connect(server)
        if chunked:
            w.write(b"POST /b HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n")
            w.write(b"20\r\n" + b"x" * 32 + b"\r\n")
        else:
            w.write(b"POST /b HTTP/1.1\r\nhost: t\r\ncontent-length: 32\r\n\r\n")
        status, headers, body = await read_response(r)
        assert status == 413
        assert headers["connection"] == "close"
        doc = orjson.loads(body)
        assert doc["status"] is False
        assert "10 bytes" in doc["message"]
        assert await closed(r)


async def test_oversized_request_head_is_431() -> None:
    async with running(max_header_bytes=2048) as server:
        r, w = await connect(server)
        w.write(b"GET /x HTTP/1.1\r\nhost: t\r\nx-big: " + b"a" * 4096 + b"\r\n\r\n")
        status, _, body = await read_response(r)
        assert status == 431
        assert orjson.loads(body)["status"] is False
        assert await closed(r)


async def test_malformed_request_is_400_json() -> None:
    async with running() as server:
        r, w = await connect(server)
        w.write(b"NOT HTTP AT ALL\r\n\r\n")
        status, _, body = await read_response(r)
        assert status == 400
        assert "malformed" in orjson.loads(body)["message"]
        assert await closed(r)


async def test_a_handler_error_is_one_500_and_the_connection_goes_on() -> None:
    async with running() as server:
        r, w = await connect(server)
        w.write(b"GET /boom HTTP/1.1\r\nhost: t\r\n\r\n")
        status, _, body = await read_response(r)
        assert status == 500
        assert orjson.loads(body) == {
            "status": False,
            "message": "internal error",
        }
        w.write(b"GET /fine HTTP/1.1\r\nhost: t\r\n\r\n")
        assert (await read_response(r))[0] == 200
        w.close()


async def test_a_client_reading_slowly_gets_every_byte_in_order() -> None:
    """Large answers to pipelined requests outgrow the socket buffers: the server waits for the
    client to drain them (write back-pressure) and sends everything, in order."""
    size = 4 << 20

    async def big(req: Incoming) -> Reply:
        return Reply(200, [], req.path[-1].encode() * size)

    async with running(big) as server:
        r, w = await connect(server)
        w.write(b"".join(b"GET /big/%d HTTP/1.1\r\nhost: t\r\n\r\n" % i for i in range(3)))
        await asyncio.sleep(0.3)  # not reading yet: the server must hold back, not drop
        for i in range(3):
            status, _, body = await read_response(r)
            assert status == 200
            assert body == str(i).encode() * size


async def test_head_has_no_body_but_keeps_the_length() -> None:
    async def length(req: Incoming) -> Reply:
        return Reply(200, [(b"content-length", b"42")], b"")

    async with running(length) as server:
        r, w = await connect(server)
        w.write(b"HEAD /x HTTP/1.1\r\nhost: t\r\n\r\nGET /y HTTP/1.1\r\nhost: t\r\n\r\n")
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        assert b"content-length: 42" in head
        # The next answer follows at once: no body bytes were sent for the HEAD.
        nxt = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        assert nxt.startswith(b"HTTP/1.1 200")
        assert b"content-length: 0" in nxt
        w.close()


async def test_unsupported_upgrade_is_answered_then_closed() -> None:
    async with running() as server:
        r, w = await connect(server)
        w.write(
            b"GET /x HTTP/1.1\r\nhost: t\r\nconnection: upgrade\r\nupgrade: h2c\r\n"
            b"http2-settings: AAMAAABkAAQAAP__\r\n\r\n"
        )
        status, headers, _ = await read_response(r)
        assert status == 200
        assert headers["connection"] == "close"
        assert await closed(r)


async def test_idle_connections_are_closed_after_the_keep_alive_timeout() -> None:
    async with running(keep_alive_seconds=0.2) as server:
        r, w = await connect(server)
        w.write(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n")
        await read_response(r)
        assert await closed(r, within=3.0)
        assert not server.connections


async def test_a_request_head_that_never_completes_is_dropped() -> None:
    """A head that stops half-way: 408 JSON once the header timeout passes, then closed."""
    async with running(header_timeout_seconds=0.2) as server:
        r, w = await connect(server)
        w.write(b"GET /x HTTP/1.1\r\nhost: t\r\nx-slow: ")
        status, _, body = await read_response(r)
        assert status == 408
        assert orjson.loads(body)["status"] is False
        assert await closed(r, within=3.0)


async def test_bytes_that_start_no_request_do_not_keep_a_connection_alive() -> None:
    """An idle client trickling empty lines (which begin no request) is still closed after the
    keep-alive timeout."""
    async with running(keep_alive_seconds=0.3) as server:
        r, w = await connect(server)
        answer = asyncio.ensure_future(r.read())
        for _ in range(100):  # bounded: ~10 s of trickling, far past the timeout and the sweep
            if answer.done():
                break
            w.write(b"\r\n")
            await asyncio.sleep(0.1)
        assert answer.done()
        assert answer.result() == b""


async def test_a_client_that_leaves_cancels_its_request() -> None:
    cancelled = asyncio.Event()
    seen: list[bool] = []

    async def wait_forever(req: Incoming) -> Reply | None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            assert req.gone is not None
            seen.append(req.gone())  # the proxy tells this cancellation from others by it
            cancelled.set()
            raise
        return None

    async with running(wait_forever) as server:
        _, w = await connect(server)
        w.write(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n")
        await asyncio.sleep(0.05)
        w.close()
        await asyncio.wait_for(cancelled.wait(), 5)
        assert seen == [True]


async def test_shutdown_lets_a_request_in_progress_finish_and_refuses_new_ones() -> None:
    async with running() as server:
        r, w = await connect(server)
        w.write(b"GET /slow HTTP/1.1\r\nhost: t\r\n\r\n")
        await asyncio.sleep(0.05)
        port = server.port
        stopping = asyncio.ensure_future(server.shutdown(5.0))
        status, headers, _ = await read_response(r)
        assert status == 200
        assert headers["connection"] == "close"
        await stopping
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)


async def test_the_access_log_never_shows_the_query(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tollgate.access")
    async with running() as server:
        r, w = await connect(server)
        w.write(b"GET /eod/AAPL?api_key=secret-key HTTP/1.1\r\nhost: t\r\n\r\n")
        await read_response(r)
        w.close()
    lines = [rec.getMessage() for rec in caplog.records if rec.name.endswith("access")]
    assert any("/eod/AAPL" in line and " 200 " in line for line in lines)
    assert not any("secret-key" in line for line in lines)


def test_render_frames_a_reply() -> None:
    reply = Reply(404, [(b"content-type", b"application/json")], b"{}")
    out = render(reply, b"date: D\r\n", keep_alive=False, head=False)
    assert out == (
        b"HTTP/1.1 404 Not Found\r\ndate: D\r\ncontent-type: application/json\r\n"
        b"content-length: 2\r\nconnection: close\r\n\r\n{}"
    )


def no_traceback(caplog: pytest.LogCaptureFixture) -> bool:
    return not any(rec.exc_info or rec.levelno >= logging.ERROR for rec in caplog.records)


@pytest.mark.parametrize(
    "target", [b"http://", b"http://[::1/x", b"http://h:99999/", b"http://h:x/", b"*"]
)
async def test_a_target_the_url_parser_rejects_is_400_json(
    caplog: pytest.LogCaptureFixture, target: bytes
) -> None:
    """A request-target httptools reads but cannot take apart: 400 JSON, no traceback."""
    async with running() as server:
        r, w = await connect(server)
        w.write(b"GET " + target + b" HTTP/1.1\r\nhost: t\r\n\r\n")
        status, _, body = await read_response(r)
        assert status == 400
        assert orjson.loads(body)["status"] is False
        assert await closed(r)
    assert no_traceback(caplog)


async def test_an_absolute_form_target_without_a_path_is_served_as_root() -> None:
    """``GET http://host HTTP/1.1`` asks for "/" (RFC 9110 §4.2.3: an empty path is "/")."""
    async with running() as server:
        r, w = await connect(server)
        w.write(b"GET http://t?x=1 HTTP/1.1\r\nhost: t\r\n\r\n")
        status, _, body = await read_response(r)
        assert status == 200
        assert orjson.loads(body)["path"] == "/"
        assert orjson.loads(body)["query"] == "x=1"


async def test_connect_is_405_json(caplog: pytest.LogCaptureFixture) -> None:
    """CONNECT (a tunnel this server never opens): 405 with Allow, no traceback."""
    async with running() as server:
        r, w = await connect(server)
        w.write(b"CONNECT host:443 HTTP/1.1\r\nhost: host:443\r\n\r\n")
        status, headers, body = await read_response(r)
        assert status == 405
        assert "CONNECT" not in headers["allow"]
        assert orjson.loads(body)["status"] is False
        assert await closed(r)
    assert no_traceback(caplog)


@pytest.mark.parametrize(
    "request_line", [b"GET /x\r\n\r\n", b"GET /x HTTP/0.9\r\n\r\n", b"GET /x HTTP/2.0\r\n"]
)
async def test_a_version_other_than_1_0_or_1_1_is_refused(request_line: bytes) -> None:
    """HTTP/0.9 (no headers, no status line) and a 2.0 request line over HTTP/1: 400, closed."""
    async with running() as server:
        r, w = await connect(server)
        w.write(request_line + b"host: t\r\n\r\n" if b"HTTP/2" in request_line else request_line)
        status, _, body = await read_response(r)
        assert status == 400
        assert "version" in orjson.loads(body)["message"]
        assert await closed(r)


@pytest.mark.parametrize("hosts", [b"", b"host: a\r\nhost: b\r\n"])
async def test_http11_needs_exactly_one_host(hosts: bytes) -> None:
    """HTTP/1.1 without Host, or with two: 400 (RFC 9112 §3.2)."""
    async with running() as server:
        r, w = await connect(server)
        w.write(b"GET /x HTTP/1.1\r\n" + hosts + b"\r\n")
        status, _, body = await read_response(r)
        assert status == 400
        assert "host" in orjson.loads(body)["message"].lower()
        assert await closed(r)


async def test_a_head_trickled_byte_by_byte_still_times_out() -> None:
    """The header timeout is a deadline for the whole head: a byte a tick (slowloris) does not
    hold the connection open; the client is told 408 and the connection closes."""
    async with running(header_timeout_seconds=0.3) as server:
        r, w = await connect(server)
        w.write(b"GET /x HTTP/1.1\r\nhost: t\r\nx-slow: ")
        answer = asyncio.ensure_future(r.read())
        for _ in range(100):  # bounded: ~10 s of trickling, far past the timeout and the sweep
            if answer.done():
                break
            w.write(b"a")
            await asyncio.sleep(0.1)
        assert answer.done()
        assert answer.result().startswith(b"HTTP/1.1 408 ")


async def test_connections_over_the_per_client_cap_get_503() -> None:
    """One address holding its cap of open connections: the next one is answered 503 JSON and
    closed; a freed slot is usable again."""
    async with running(max_connections_per_client=2) as server:
        first = [await connect(server) for _ in range(2)]
        for r, w in first:
            w.write(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n")
            assert (await read_response(r))[0] == 200
        r3, _ = await connect(server)
        status, headers, body = await read_response(r3)
        assert status == 503
        assert headers["connection"] == "close"
        assert orjson.loads(body)["status"] is False
        assert await closed(r3)
        first[0][1].close()
        for _ in range(100):  # bounded wait for the server to see the close
            if len(server.connections) < 2:
                break
            await asyncio.sleep(0.02)
        r4, w4 = await connect(server)
        w4.write(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n")
        assert (await read_response(r4))[0] == 200


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("GET", b"/a/b?x=1", (b"/a/b", b"x=1")),
        ("GET", b"http://h:8080/a?x", (b"/a", b"x")),
        ("GET", b"http://h", (b"/", b"")),
        ("OPTIONS", b"*", (b"*", b"")),
    ],
)
def test_request_target_takes_the_path_and_query(
    method: str, url: bytes, expected: tuple[bytes, bytes]
) -> None:
    """Origin-form, absolute-form (an empty path is "/") and OPTIONS' asterisk-form."""
    assert request_target(method, "1.1", 1, url) == expected


@pytest.mark.parametrize(
    ("method", "version", "hosts", "url", "status"),
    [
        ("GET", "0.9", 0, b"/", 400),
        ("GET", "2.0", 1, b"/", 400),
        ("GET", "1.1", 0, b"/", 400),
        ("GET", "1.0", 2, b"/", 400),
        ("CONNECT", "1.1", 1, b"h:443", 405),
        ("GET", "1.1", 1, b"*", 400),
        ("GET", "1.1", 1, b"http://[::1/x", 400),
    ],
)
def test_request_target_refuses_what_cannot_be_served(
    method: str, version: str, hosts: int, url: bytes, status: int
) -> None:
    """Versions but 1.0/1.1, Host missing (1.1) or repeated, CONNECT, bad targets: a Refusal."""
    with pytest.raises(Refusal) as refused:
        request_target(method, version, hosts, url)
    assert refused.value.status == status


def test_http10_without_host_is_served() -> None:
    """HTTP/1.0 predates Host: none is fine."""
    assert request_target("GET", "1.0", 0, b"/x") == (b"/x", b"")


async def test_shutdown_answers_a_request_on_an_idle_connection_instead_of_racing_it() -> None:
    """A keep-alive connection idle when the drain starts is not closed under the client's feet:
    a request sent on it gets its answer, with the close announced."""
    async with running(keep_alive_seconds=2.0) as server:
        r, w = await connect(server)
        w.write(b"GET /first HTTP/1.1\r\nhost: t\r\n\r\n")
        assert (await read_response(r))[0] == 200
        stopping = asyncio.ensure_future(server.shutdown(5.0))
        await asyncio.sleep(0.1)
        w.write(b"GET /second HTTP/1.1\r\nhost: t\r\n\r\n")
        status, headers, body = await read_response(r)
        assert (status, headers["connection"]) == (200, "close")
        assert b"/second" in body
        assert await asyncio.wait_for(r.read(), 5) == b""  # then closed by the server
        await stopping


async def test_shutdown_closes_idle_connections_at_the_keep_alive_timeout() -> None:
    async with running(keep_alive_seconds=0.5) as server:
        r, w = await connect(server)
        w.write(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n")
        assert (await read_response(r))[0] == 200
        await asyncio.wait_for(server.shutdown(5.0), 4)
        assert await asyncio.wait_for(r.read(), 1) == b""


class Source:
    """A streamed body for the server to pull (the gateway's is bodystream.BodyStream): ``parts``
    in order, then the end, or ``fail`` after them; ``closed`` once the server is done with it."""

    def __init__(self, parts: list[bytes], length: int | None, fail: bool = False) -> None:
        self.parts = list(parts)
        self.length = length
        self.fail = fail
        self.closed = False
        self.pulled = 0

    async def next(self) -> bytes:
        await asyncio.sleep(0)
        if self.parts:
            self.pulled += 1
            return self.parts.pop(0)
        if self.fail:
            raise ConnectionError("the upstream went away mid-body")
        return b""

    def close(self) -> None:
        self.closed = True


def streaming(sources: list[Source]) -> Handler:
    async def handler(req: Incoming) -> Reply:
        if req.path == "/small":
            return Reply(200, [], b"small")
        return Reply(200, [(b"content-type", b"application/octet-stream")], b"", sources.pop(0))

    return handler


async def test_a_streamed_reply_with_a_length_keeps_the_connection() -> None:
    """A streamed body of known length goes out with its Content-Length, and the connection
    serves the next request."""
    source = Source([b"a" * 70_000, b"b" * 70_000], 140_000)
    async with running(streaming([source])) as server:
        r, w = await connect(server)
        w.write(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\nGET /small HTTP/1.1\r\nhost: x\r\n\r\n")
        status, headers, body = await read_response(r)
        assert (status, headers["content-length"]) == (200, "140000")
        assert body == b"a" * 70_000 + b"b" * 70_000
        assert (await read_response(r))[2] == b"small"
    assert source.closed


async def test_a_streamed_reply_of_unknown_length_is_chunked() -> None:
    """Without a length the body is sent chunked, and the connection goes on after it."""
    source = Source([b"hello ", b"world"], None)
    async with running(streaming([source])) as server:
        r, w = await connect(server)
        w.write(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\nGET /small HTTP/1.1\r\nhost: x\r\n\r\n")
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        assert b"transfer-encoding: chunked\r\n" in head
        assert b"content-length" not in head
        raw = await asyncio.wait_for(r.readuntil(b"0\r\n\r\n"), 5)
        assert raw == b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"
        assert (await read_response(r))[2] == b"small"


async def test_a_stream_failing_mid_body_closes_the_connection() -> None:
    """A body that cannot be completed: the connection is closed short of the length (the status
    line is gone already, the close is all that tells the client), not left hanging."""
    source = Source([b"x" * 1000], 5000, fail=True)
    async with running(streaming([source])) as server:
        r, w = await connect(server)
        w.write(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        assert await asyncio.wait_for(r.read(), 5) == b"x" * 1000  # then the close
    assert source.closed


async def test_a_client_leaving_mid_stream_closes_the_source() -> None:
    """A client that hangs up mid-body: the server stops pulling and closes the source."""
    source = Source([b"x" * (1 << 20)] * 200, 200 << 20)
    async with running(streaming([source])) as server:
        r, w = await connect(server)
        w.write(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.wait_for(r.readexactly(1 << 16), 5)
        w.transport.abort()
        for _ in range(500):
            if source.closed:
                break
            await asyncio.sleep(0.01)
        assert source.closed  # before the server's shutdown would close it anyway
    assert source.pulled < 200  # back-pressure: it never pulled the whole body for nobody


async def test_a_client_taking_no_byte_of_a_stream_is_closed() -> None:
    """A client that stops reading a streamed body is cut off after the send timeout, and the
    source (in the gateway: an upstream connection) is let go."""
    source = Source([b"x" * (1 << 20)] * 200, 200 << 20)
    async with running(streaming([source]), send_timeout_seconds=0.3) as server:
        _, w = await connect(server)
        w.transport.pause_reading()  # reads nothing more: buffers fill on both sides
        w.write(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        for _ in range(1000):
            if source.closed:
                break
            await asyncio.sleep(0.01)
        assert source.closed  # before the server's shutdown would close it anyway
    assert source.pulled < 200


async def test_the_correlation_headers_are_seen_as_the_head_is_read() -> None:
    """What the server notes of each head for a traced front agrees with the front's own look
    (tracing.correlation): a traceparent or tracestate came, and the first X-Request-Id as sent;
    pipelined requests on one connection each get their own."""
    from tollgate_common.tracing import correlation

    def shown(found: tuple[bool | None, bytes | None]) -> list[object]:
        return [found[0], None if found[1] is None else found[1].decode()]

    async def facts(req: Incoming) -> Reply:
        seen = shown((req.trace_context, req.first_request_id))
        return Reply(
            200, [], orjson.dumps({"seen": seen, "looked": shown(correlation(req.headers))})
        )

    heads = [
        b"X-Request-Id: first\r\nx-request-id: second\r\nTraceparent: 00-x-y-01\r\n",
        b"",
        b"tracestate: a=1\r\n",
        b"X-REQUEST-ID: \r\naccept: */*\r\n",
    ]
    async with running(facts) as server:
        r, w = await connect(server)
        w.write(b"".join(b"GET /c HTTP/1.1\r\nhost: t\r\n" + h + b"\r\n" for h in heads))
        got = [orjson.loads((await read_response(r))[2]) for _ in heads]
    assert [d["seen"] for d in got] == [[True, "first"], [False, None], [True, None], [False, ""]]
    assert all(d["seen"] == d["looked"] for d in got)
