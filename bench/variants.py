"""Candidate changes to how the gateway is served, measured as bench rows before anyone adopts
them (the product's own entry point is ``python -m tollgate_gateway``; nothing here is imported
by it). Run as ``python -m bench.variants`` with the gateway's usual environment plus
``BENCH_VARIANT``, a comma-separated set of:

- ``onewrite``: uvicorn writes a response's head and body with two ``write()`` calls, two
  syscalls; this protocol joins everything written in one loop turn into one. On this machine (a
  VM where a syscall costs microseconds) that was +13% req/s on a miss and +21% on a hit.
- ``gc``: a larger first-generation threshold, so the young collections that the per-request
  allocations trigger run less often (+8% on a miss; py-spy showed ~8% of a worker in
  ``gc_collect_main``).
"""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tollgate_gateway.settings import GatewaySettings


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
            self._t.write(data)

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
    variant = set(os.environ.get("BENCH_VARIANT", "").split(","))
    if "gc" in variant:
        gc.set_threshold(20_000, 50, 100)
    s = GatewaySettings()
    uvicorn.run(
        "tollgate_gateway.app:main_app",
        factory=True,
        host=s.host,
        port=s.port,
        loop="uvloop",
        http=OneWriteProtocol if "onewrite" in variant else "httptools",
        access_log=False,
        log_level=s.log_level.lower(),
        proxy_headers=False,
        server_header=False,
        backlog=2048,
    )


if __name__ == "__main__":
    main()
