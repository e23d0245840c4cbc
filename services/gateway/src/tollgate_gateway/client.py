"""The upstream HTTP client: a keep-alive connection pool per upstream origin.

INTERFACE CONTRACT (the rest of the gateway codes against exactly this):

- ``UpstreamPool(max_per_origin=..., connect_timeout=..., max_body_bytes=...)``
- ``await pool.request(origin, method, target, headers, body) -> UpstreamResponse``
  ``origin`` is ``"http://host:port"`` (scheme+authority of an endpoint URL, no path);
  ``target`` the request-target (path and query, already built by the caller);
  ``headers`` a list of ``(name, value)`` byte pairs, hop-by-hop headers already removed,
  without Host (the pool sets Host from the origin) and without Content-Length (set from body).
- The response body is read in full (bounded by ``max_body_bytes``; larger raises
  ``UpstreamError``). ``UpstreamResponse.headers`` are the raw upstream headers; the caller strips
  hop-by-hop headers.
- Deadlines belong to the caller (``asyncio.timeout``). The pool is cancel-safe: a cancelled
  request closes its connection instead of returning it to the pool.
- Errors: ``UpstreamError`` for connect failures, resets, protocol errors, oversized bodies.
- ``await pool.aclose()`` closes every connection.

This first version delegates to httpx; it is replaced by a lean pool over httptools when the
benchmark says so (see bench/).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx


class UpstreamError(Exception):
    """The upstream could not be reached or did not speak valid HTTP."""


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class UpstreamPool:
    def __init__(
        self,
        *,
        max_per_origin: int = 256,
        connect_timeout: float = 5.0,
        max_body_bytes: int = 64 << 20,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=max_per_origin),
            timeout=httpx.Timeout(None, connect=connect_timeout),
            follow_redirects=False,
        )

    async def request(
        self,
        origin: str,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes = b"",
    ) -> UpstreamResponse:
        try:
            r = await self._client.request(
                method, origin + target, headers=headers, content=body or None
            )
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}") from exc
        if len(r.content) > self.max_body_bytes:
            raise UpstreamError("upstream response body too large")
        return UpstreamResponse(r.status_code, list(r.headers.raw), r.content)

    async def aclose(self) -> None:
        await self._client.aclose()
