"""Running a service's server process: signals to a graceful stop, and optional worker processes.

With ``workers`` > 1 the process forks that many workers, each listening on the port with
SO_REUSEPORT (the kernel spreads connections); in Kubernetes, scale with pods instead. A worker
that dies takes the others down with a non-zero exit, so the pod restarts whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

Serve = Callable[[asyncio.Future[None], bool], Coroutine[Any, Any, None]]


async def _until_signal(serve: Serve, reuse_port: bool) -> None:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    loop.add_signal_handler(signal.SIGTERM, on_signal)
    loop.add_signal_handler(signal.SIGINT, on_signal)
    await serve(stop, reuse_port)


def run(serve: Serve, workers: int = 1) -> int:
    """Serve until SIGTERM/SIGINT; the exit status."""
    if workers == 1:
        uvloop.run(_until_signal(serve, False))
        return 0
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # a worker
            uvloop.run(_until_signal(serve, True))
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
