"""A real redis-server on a free loopback port, in a temporary directory."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

from tollgate_testkit.ports import free_port
from tollgate_testkit.procs import Proc


class RedisServer:
    """``appendonly``: persist as the chart does (AOF, fsync every second), so a restart keeps
    the data; without it a restart comes back empty."""

    def __init__(self, workdir: Path, port: int | None = None, *, appendonly: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server not found: run `make install` (apt-get install redis-server)"
            )
        self.port = port or free_port()
        self.workdir = workdir
        self.appendonly = appendonly
        aof = (
            ["--appendonly", "yes", "--appendfsync", "everysec"]
            if appendonly
            else [
                "--appendonly",
                "no",
            ]
        )
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc = Proc(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *aof,
                "--dir",
                str(workdir),
                "--protected-mode",
                "yes",
            ],
            log=workdir / "redis.log",
        )
        self.proc.wait_port(self.port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.stop()

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop with ``sig`` (SIGKILL: a crash) and start again on the same port (an outage,
        then recovery)."""
        self.proc.kill(sig)
        self.stop()
        self.__init__(self.workdir, self.port, appendonly=self.appendonly)  # type: ignore[misc]
