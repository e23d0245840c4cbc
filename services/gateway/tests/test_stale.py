"""The stale answer's shape (pure)."""

from __future__ import annotations

from tollgate_gateway.cache import Cached
from tollgate_gateway.proxy import stale_reply


def test_a_stale_reply_says_stale_and_its_own_age() -> None:
    """X-Cache: STALE, and one Age: seconds since the entry was stored, not the upstream's."""
    entry = Cached(
        200, [(b"content-type", b"application/json"), (b"age", b"7")], b"{}", 110.0, 200.0, 100.0
    )
    reply = stale_reply(entry, None, now=142.9)
    assert reply.status == 200
    assert reply.body == b"{}"
    assert reply.headers == [
        (b"content-type", b"application/json"),
        (b"x-cache", b"STALE"),
        (b"age", b"42"),
    ]
