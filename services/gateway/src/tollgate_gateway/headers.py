"""What crosses the gateway in each direction (pure functions over raw ASGI header lists).

Credentials (the ``api_key`` query parameter, ``X-API-Key``, ``Authorization``) are taken out here
and never reach an upstream, a log line or a cache key. Hop-by-hop headers (RFC 9110 §7.6.1, plus
any named in Connection) are stripped both ways.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from tollgate_common.types import Headers

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set by the gateway itself (Host from the upstream origin, length from the body) or credentials.
REQUEST_DROP = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"x-api-key",
    b"authorization",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-request-id",
    b"expect",  # bodies are buffered here; a 100-continue exchange has no use upstream
}
RESPONSE_DROP = HOP_BY_HOP | {b"content-length", b"date", b"server"}
KEY_PARAM = "api_key"


def split_query(raw: bytes) -> tuple[str | None, list[bytes]]:
    """The API key from the query string, and the other parameters as raw ``name=value`` parts.

    Raw parts are kept as the client sent them (no re-encoding), minus the key; empty parts go.
    """
    key: str | None = None
    rest: list[bytes] = []
    for part in raw.split(b"&"):
        if not part:
            continue
        name = part.split(b"=", 1)[0]
        if unquote_plus(name.decode("latin-1")) == KEY_PARAM:
            value = part[len(name) + 1 :]
            key = unquote_plus(value.decode("latin-1"))
            continue
        rest.append(part)
    return key, rest


def connection_tokens(headers: Headers) -> frozenset[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return frozenset(tokens)


def key_from_headers(headers: Headers) -> str | None:
    for name, value in headers:
        if name == b"x-api-key" and value:
            return value.decode("latin-1").strip()
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].decode("latin-1").strip()
    return None


def upstream_request_headers(
    headers: Headers,
    *,
    client_ip: str,
    scheme: str,
    request_id: bytes,
    extra: Headers,
    trust_forwarded_for: bool,
) -> Headers:
    tokens = connection_tokens(headers)
    drop = REQUEST_DROP | tokens if tokens else REQUEST_DROP
    out: Headers = []
    forwarded_for = b""
    host = b""
    for name, value in headers:
        if name == b"x-forwarded-for":
            forwarded_for = value
        elif name == b"host":
            host = value
        if name in drop:
            continue
        out.append((name, value))
    ip = client_ip.encode()
    xff = forwarded_for + b", " + ip if trust_forwarded_for and forwarded_for else ip
    out.append((b"x-forwarded-for", xff))
    out.append((b"x-forwarded-proto", scheme.encode()))
    if host:
        out.append((b"x-forwarded-host", host))
    out.append((b"x-request-id", request_id))
    out.extend(extra)
    return out


def client_response_headers(headers: Headers) -> Headers:
    tokens = connection_tokens(headers)
    drop = RESPONSE_DROP | tokens if tokens else RESPONSE_DROP
    return [(n.lower(), v) for n, v in headers if n.lower() not in drop]


def cacheable_response(headers: Headers) -> bool:
    """False when the upstream said no-store or private (RFC 9111 §5.2.2)."""
    for name, value in headers:
        if name.lower() == b"cache-control":
            directives = {d.strip().split(b"=")[0].lower() for d in value.split(b",")}
            if b"no-store" in directives or b"private" in directives:
                return False
    return True
