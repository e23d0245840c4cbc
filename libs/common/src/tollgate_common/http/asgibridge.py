"""Admin endpoints (FastAPI apps: health, metrics, docs, the auth admin API) served by the
services' own server (server.py): one request in, one ``Reply`` out, through ASGI.

Only what those endpoints use: the request body is already read whole, and the response is
collected whole before it is written (none of them streams). Hot paths never come here.
"""

from __future__ import annotations

from tollgate_common.http.exchange import Incoming, Reply
from tollgate_common.types import ASGIApp, Headers, Message


async def call(app: ASGIApp, req: Incoming, server: tuple[str, int]) -> Reply | None:
    """Run ``app`` for ``req``."""
    body = await req.read_body(1 << 30)  # the server already holds it within its own limit
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": req.method,
        "scheme": req.scheme,
        "path": req.path,
        "raw_path": req.raw_path,
        "query_string": req.query_string,
        "root_path": "",
        "headers": req.headers,
        "client": (req.client, 0) if req.client else None,
        "server": server,
        "state": {},
    }
    sent_body = False
    status = 0
    headers: Headers = []
    chunks: list[bytes] = []
    done = False

    async def receive() -> Message:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await req.disconnected()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, headers, done
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))
            done = not message.get("more_body", False)

    # A client that leaves cancels this task (the server does), and the app with it. An error
    # in the app propagates: the server answers 500 and logs it.
    await app(scope, receive, send)
    if not status or not done:
        raise RuntimeError("the admin app returned without a complete response")
    # Framing is the server's: it sets Content-Length from the body (or keeps a HEAD's).
    keep = [(n, v) for n, v in headers if n not in (b"transfer-encoding", b"connection")]
    return Reply(status, keep, b"".join(chunks))
