"""The type aliases that several modules share, each defined once (issue 15).

``Headers`` is how an HTTP header block travels through the server, the proxy, the cache and the
tracing: ``(name, value)`` byte pairs in wire order, repeats kept. The ASGI aliases are those of
the ASGI 3 spec, as loosely typed as starlette types them; the handler of the services' own server
is ``tollgate_common.http.exchange.Handler``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Headers = list[tuple[bytes, bytes]]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
