"""The lean Redis client against a real redis-server."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import NoScriptError, ResponseError

from tollgate_common.redis.resp import LeanRedis, NotSent, encode
from tollgate_testkit.ports import free_port
from tollgate_testkit.redis_server import RedisServer
from tollgate_testkit.relay import Relay


def test_encode() -> None:
    """Commands are RESP arrays of bulk strings."""
    assert encode("GET", b"k") == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    assert encode("SET", "k", 12) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"


async def test_get_set_round_trip(redis_url: str) -> None:
    """SET with PX then GET; a missing key is None."""
    r = LeanRedis(redis_url)
    assert await r.set(b"k", b"\x00binary\r\n", px=60_000) == b"OK"
    assert await r.get(b"k") == b"\x00binary\r\n"
    assert await r.get(b"missing") is None
    await r.aclose()


async def test_concurrent_replies_reach_their_callers(redis_url: str) -> None:
    """500 concurrent GETs on one pipelined connection each get their own value."""
    r = LeanRedis(redis_url)
    for i in range(500):
        await r.set(f"k{i}", str(i).encode())
    values = await asyncio.gather(*(r.get(f"k{i}") for i in range(500)))
    assert values == [str(i).encode() for i in range(500)]
    await r.aclose()


async def test_cancelled_caller_does_not_shift_replies(redis_url: str) -> None:
    """A caller that gives up leaves its reply to be dropped; the next caller gets its own."""
    r = LeanRedis(redis_url)
    await r.set("slow", b"1")
    await r.set("after", b"2")
    slow = asyncio.ensure_future(
        r.execute(
            "EVAL",
            "local t = redis.call('TIME') "
            "while redis.call('TIME')[1] - t[1] < 1 do end "
            "return 'late'",
            0,
        )
    )
    await asyncio.sleep(0.05)
    slow.cancel()
    assert await r.get("after") == b"2"
    await r.aclose()


async def test_script_errors_map_like_redis_py(redis_url: str) -> None:
    """NOSCRIPT raises NoScriptError, other errors ResponseError; load then run works."""
    r = LeanRedis(redis_url)
    with pytest.raises(NoScriptError):
        await r.evalsha("0" * 40, 0)
    with pytest.raises(ResponseError):
        await r.execute("NOSUCHCOMMAND")
    sha = await r.script_load("return ARGV[1]")
    assert await r.evalsha(sha, 0, "x") == b"x"
    await r.aclose()


async def test_outage_fails_fast_and_reconnects(redis_server: RedisServer, redis_url: str) -> None:
    """Redis gone: calls raise ConnectionError; back: the next call reconnects."""
    r = LeanRedis(redis_url)
    await r.set("k", b"v")
    redis_server.stop()
    try:
        with pytest.raises(ConnectionError):
            await r.get("k")
        with pytest.raises(ConnectionError):
            await r.get("k")
    finally:
        redis_server.restart()
    await r.set("k", b"again")
    assert await r.get("k") == b"again"
    await r.aclose()


async def test_hung_redis_times_out_and_recovers(redis_server: RedisServer, redis_url: str) -> None:
    """A Redis that stops answering (SIGSTOP) gives TimeoutError within the bound, not a hang."""
    import signal

    r = LeanRedis(redis_url, timeout=0.3)
    await r.set("k", b"v")
    redis_server.proc.kill(signal.SIGSTOP)
    try:
        with pytest.raises(TimeoutError):
            await r.get("k")
    finally:
        redis_server.proc.kill(signal.SIGCONT)
    assert await r.get("k") == b"v"
    await r.aclose()


async def test_silent_connection_is_dropped_though_callers_give_up_sooner(
    redis_url: str,
) -> None:
    """Replies stop coming on the connection (a black hole) and every caller's deadline is
    shorter than the client's timeout (the ledger's case): the connection is still dropped after
    ``timeout``, and a call on a fresh one succeeds."""
    relay = Relay(int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    r = LeanRedis(relay.url, timeout=0.5)
    try:
        assert await r.execute("PING") == b"PONG"
        relay.cut()
        answers = []
        for _ in range(10):
            try:
                async with asyncio.timeout(0.2):
                    answers.append(await r.execute("PING"))
                break
            except (TimeoutError, ConnectionError):  # the silent connection, given up
                continue
        assert answers == [b"PONG"]
        assert relay.connections == 2
    finally:
        await r.aclose()
        relay.stop()


async def test_nothing_listening_is_not_sent() -> None:
    """A refused connection raises NotSent (a ConnectionError): the command cannot have run."""
    r = LeanRedis(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(NotSent):
        await r.execute("PING")
