"""One incoming request, whatever server interface carried it, and its I/O with the client:
reading the body within a limit, noticing a disconnect, the request id."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any, TypeVar

from tollgate_common.exchange import Incoming, Reply
from tollgate_common.ids import UniqueIds
from tollgate_gateway.errors import PayloadTooLarge

__all__ = ["ClientGone", "Incoming", "Reply", "request_id", "until_disconnect"]

Headers = list[tuple[bytes, bytes]]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected; there is nobody to answer."""


async def read_body(receive: Receive, limit: int) -> bytes:
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
                raise PayloadTooLarge(f"request body over {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if len(chunks) != 1 else chunks[0]


WATCH_AFTER = 0.05  # seconds; a request answered sooner never pays for a watcher task


async def until_disconnect(
    loop: asyncio.AbstractEventLoop, req: Incoming, work: Coroutine[Any, Any, T]
) -> T:
    """Run ``work`` in this task; if the client disconnects first, cancel it (its upstream
    requests and connections go with it) and raise ClientGone.

    For ASGI servers; the gateway's own server cancels the task itself when the client leaves
    (``req.gone`` is set), and the proxy only tells that cancellation apart.

    Watching needs a task blocked on ``receive()``. Most requests finish in well under
    WATCH_AFTER, so the watcher is only started by a timer for the slow ones: a timer handle costs
    a fraction of a task, and a client gone within WATCH_AFTER is noticed at most that late.
    """
    me = asyncio.current_task(loop)  # with the loop given: no get_running_loop() (see Proxy.loop)
    assert me is not None
    disconnected = req.disconnected
    gone = False
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:
        nonlocal gone
        await disconnected()
        gone = True
        me.cancel()

    def start_watch() -> None:
        nonlocal watcher
        watcher = asyncio.ensure_future(watch())

    timer = loop.call_later(WATCH_AFTER, start_watch)
    try:
        return await work
    except asyncio.CancelledError:
        if gone:
            me.uncancel()
            raise ClientGone() from None
        raise
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


async def wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def request_id(headers: Headers) -> bytes:
    for name, value in headers:
        if name == b"x-request-id" and 0 < len(value) <= 128 and value.isascii():
            return value
    return _request_ids.fixed_bytes()


_request_ids = UniqueIds(6)


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""
