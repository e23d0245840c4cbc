"""The request path in the one form the gateway both routes and sends upstream (pure).

The path is decoded once, RFC 3986 §6.2.2's way: an escape of an unreserved character
(``ALPHA DIGIT - . _ ~``) is decoded (``%61`` is ``a``), every other escape stays encoded with
upper-case hex (``%2f`` is ``%2F``), and nothing else changes. So:

- ``%2F`` is data, never a separator: ``/eod/a%2Fb`` is the one segment ``a%2Fb``, routed as
  such and sent upstream as such (as nginx and Envoy do by default).
- Dot segments (``.``, ``..``) are refused with 400, spelt plainly or encoded (``%2e%2e``), and
  also where only an upstream that decodes ``%2F``/``%5C`` or splits on ``\\`` or ``;`` would
  see one (``..%2F..``, ``..;``): no client leaves its route's prefix, here or upstream.
- A malformed escape (``%zz``, a lone ``%``) is refused with 400.

Route prefixes are unreserved characters only (``routes.PATH_PREFIX_PATTERN``), so matching the
normalized path matches every spelling of it, and the upstream gets exactly the path that was
routed (issue 11: ``/%61pi/v1/bi/t10`` was routed to ``/bi`` and sent as ``v1/bi/t10``).
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from tollgate_gateway.errors import BadRequest

UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
HEX = frozenset(b"0123456789abcdefABCDEF")
DOTS = frozenset({".", ".."})


def normalize(raw: bytes) -> str:
    """The normalized form of a raw request path (BadRequest when it has none). The common
    path, with no escape and no "/.", costs two substring searches and a decode."""
    if b"%" in raw:
        raw = _decode_unreserved(raw)
    path = raw.decode("latin-1")
    if ("/." in path or "\\." in path) and _has_dot_segment(path):
        raise BadRequest("path segments '.' and '..' are not allowed")
    if "%2F" in path or "%5C" in path:  # what an upstream that decodes them would see
        decoded = unquote_to_bytes(path).decode("latin-1")
        if _has_dot_segment(decoded):
            raise BadRequest("path segments '.' and '..' are not allowed")
    return path


def _decode_unreserved(raw: bytes) -> bytes:
    first, *escaped = raw.split(b"%")
    out = [first]
    for part in escaped:
        code = part[:2]
        if len(code) < 2 or code[0] not in HEX or code[1] not in HEX:
            raise BadRequest("malformed percent-encoding in the path")
        byte = int(code, 16)
        if byte in UNRESERVED:
            out += [bytes((byte,)), part[2:]]
        else:
            out += [b"%", code.upper(), part[2:]]
    return b"".join(out)


def _has_dot_segment(path: str) -> bool:
    # "\" is a separator to some servers, ";" starts path parameters to others (Tomcat's "..;").
    segments = path.replace("\\", "/").split("/")
    return any(segment.split(";", 1)[0] in DOTS for segment in segments)
