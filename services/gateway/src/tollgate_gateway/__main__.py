"""``python -m tollgate_gateway``: the gateway on its own HTTP server (server.py) over uvloop.

With ``workers`` > 1 the process forks that many workers, each listening on the port with
SO_REUSEPORT (the kernel spreads connections); in Kubernetes, scale with pods instead. A worker
that dies takes the others down with a non-zero exit, so the pod restarts whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

import uvloop

from tollgate_common.logging import configure_logging
from tollgate_gateway.app import serve
from tollgate_gateway.settings import GatewaySettings


async def run(settings: GatewaySettings, reuse_port: bool) -> None:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    loop.add_signal_handler(signal.SIGTERM, on_signal)
    loop.add_signal_handler(signal.SIGINT, on_signal)
    await serve(settings, stop, reuse_port=reuse_port)


def main() -> None:
    s = GatewaySettings()
    configure_logging(s.log_level, s.log_json)
    if s.workers == 1:
        uvloop.run(run(s, reuse_port=False))
        return
    sys.exit(supervise(s))


def supervise(s: GatewaySettings) -> int:
    children = []
    for _ in range(s.workers):
        pid = os.fork()
        if pid == 0:  # a worker
            uvloop.run(run(s, reuse_port=True))
            os._exit(0)
        children.append(pid)

    def forward(sig: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    while children:
        pid, status = os.wait()
        children.remove(pid)
        if os.waitstatus_to_exitcode(status) != 0 and code == 0:
            code = 1
            forward(signal.SIGTERM, None)  # one worker failed: stop the rest, exit non-zero
    return code


if __name__ == "__main__":
    main()
