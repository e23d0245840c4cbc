"""Other ways to serve the same gateway, measured as optional bench rows
(``python -m bench --variants``) against the production entry point, ``python -m tollgate_gateway``
(the gateway on its own server, tollgate_common/http/server.py). Run as
``python -m bench.variants`` with the gateway's usual environment plus ``BENCH_VARIANT``:

- ``uvicorn``: the gateway as an ASGI app under uvicorn (uvloop + httptools), with a transport
  that joins a response's head and body into one ``write()`` (what production used before its
  own server: the ASGI messages and uvicorn's response cycle cost ~12 µs a request more).
- ``stock``: uvicorn as it comes, which writes head and body with two ``write()`` syscalls (the
  one-write transport measured +13% req/s on a miss, +21% on a hit).

The granian rows need no launcher: servers.gateway starts ``granian --interface asgi`` directly.
A new candidate is a branch below and a row in targets.py; measure it before anyone adopts it.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tollgate_gateway.settings import GatewaySettings

VARIANTS = ("uvicorn", "stock")


class _OneWrite:
    """A transport whose writes within one loop turn leave as one ``write()``."""

    def __init__(self, transport: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._t = transport
        self._loop = loop
        self._buf: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._buf:
            self._loop.call_soon(self._flush)
        self._buf.append(data)

    def _flush(self) -> None:
        if self._buf:
            data = b"".join(self._buf) if len(self._buf) > 1 else self._buf[0]
            self._buf.clear()
            if not self._t.is_closing():
                self._t.write(data)

    def get_write_buffer_size(self) -> int:
        return int(self._t.get_write_buffer_size()) + sum(len(b) for b in self._buf)

    def close(self) -> None:
        self._flush()  # uvicorn closes right after the last write on Connection: close
        self._t.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._t, name)


class OneWriteProtocol(HttpToolsProtocol):
    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.transport = _OneWrite(transport, self.loop)  # type: ignore[assignment]


def main() -> None:
    variant = os.environ.get("BENCH_VARIANT", "")
    if variant not in VARIANTS:
        raise SystemExit(f"BENCH_VARIANT must be one of {VARIANTS}, not {variant!r}")
    s = GatewaySettings()
    uvicorn.run(
        "tollgate_gateway.asgi:main_app",
        factory=True,
        host=s.host,
        port=s.port,
        loop="uvloop",
        http=OneWriteProtocol if variant == "uvicorn" else "httptools",
        access_log=False,
        log_level=s.log_level.lower(),
        proxy_headers=False,
        server_header=False,
        backlog=2048,
    )


if __name__ == "__main__":
    main()
