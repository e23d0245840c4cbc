"""How the gateway is served: uvicorn (uvloop + httptools) with two measured adjustments.

- One ``write()`` per response: uvicorn writes a response's head and body with two write() calls,
  two syscalls; the transport below joins what is written in one loop turn. On the 2-core VMs we
  measure on, a syscall costs microseconds: +13% req/s on a miss, +21% on a hit
  (``python -m bench --variants``, bench/variants.py, where this was measured first).
- A larger first-generation GC threshold: per-request allocations triggered young collections
  that py-spy showed at ~8% of a worker; (20000, 50, 100) cut that (+8% on a miss). Start-up
  objects are frozen out of the collector altogether (app.py).
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

GC_THRESHOLD = (20_000, 50, 100)


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


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLD)
