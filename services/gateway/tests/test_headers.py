"""Credentials stay behind; hop-by-hop headers are stripped both ways."""

from __future__ import annotations

from tollgate_gateway.headers import (
    cacheable_response,
    client_response_headers,
    key_from_headers,
    split_query,
    upstream_request_headers,
)


def test_split_query_takes_the_key_out() -> None:
    """api_key is removed; the other parameters stay raw and in order."""
    key, rest = split_query(b"b=2&api_key=tg_abc%2Bx&a=%20&&c")
    assert key == "tg_abc+x"
    assert rest == [b"b=2", b"a=%20", b"c"]


def test_key_from_headers() -> None:
    """X-API-Key and Authorization: Bearer both carry a key."""
    assert key_from_headers([(b"x-api-key", b"k1")]) == "k1"
    assert key_from_headers([(b"authorization", b"Bearer k2")]) == "k2"
    assert key_from_headers([(b"authorization", b"Basic xx")]) is None


def test_upstream_headers_drop_credentials_and_hop_by_hop() -> None:
    """No key, no hop-by-hop (incl. those named in Connection); forwarding headers added."""
    out = upstream_request_headers(
        [
            (b"host", b"gw"),
            (b"x-api-key", b"secret"),
            (b"authorization", b"Bearer secret"),
            (b"connection", b"keep-alive, x-private"),
            (b"x-private", b"1"),
            (b"te", b"trailers"),
            (b"accept", b"application/json"),
            (b"x-forwarded-for", b"10.0.0.1"),
        ],
        client_ip="127.0.0.9",
        scheme="https",
        request_id=b"rid",
        extra=[(b"x-extra", b"v")],
        trust_forwarded_for=False,
    )
    d = dict(out)
    assert b"secret" not in b"".join(v for _, v in out)
    assert not {b"connection", b"x-private", b"te", b"host"} & d.keys()
    assert d[b"accept"] == b"application/json"
    assert d[b"x-forwarded-for"] == b"127.0.0.9"
    assert d[b"x-forwarded-proto"] == b"https"
    assert d[b"x-forwarded-host"] == b"gw"
    assert d[b"x-request-id"] == b"rid"
    assert d[b"x-extra"] == b"v"


def test_trusted_forwarded_for_is_appended() -> None:
    """Behind a trusted proxy the chain is kept."""
    out = dict(
        upstream_request_headers(
            [(b"x-forwarded-for", b"10.0.0.1")],
            client_ip="127.0.0.9",
            scheme="http",
            request_id=b"r",
            extra=[],
            trust_forwarded_for=True,
        )
    )
    assert out[b"x-forwarded-for"] == b"10.0.0.1, 127.0.0.9"


def test_response_headers_drop_hop_by_hop() -> None:
    """Transfer-Encoding, Connection and length are the gateway's own business."""
    out = client_response_headers(
        [
            (b"Content-Type", b"application/json"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Connection", b"close"),
            (b"Content-Length", b"5"),
        ]
    )
    assert out == [(b"content-type", b"application/json")]


def test_no_store_and_private_are_not_cacheable() -> None:
    """Upstream Cache-Control no-store/private keeps an answer out of the cache."""
    assert not cacheable_response([(b"Cache-Control", b"no-store")])
    assert not cacheable_response([(b"cache-control", b"private, max-age=60")])
    assert cacheable_response([(b"cache-control", b"public, max-age=60")])
