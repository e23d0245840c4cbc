"""A running demo upstream as a test sees it: its address and its control API.

The control API (``/_control``) is the same wherever the upstream runs, so it lives in
``DemoUpstream``; how the server was started and is stopped is the provider's part: ``Upstream``
here is a host process, ``tollgate_testkit.containers.ContainerUpstream`` a container.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import httpx

from tollgate_testkit.ports import free_port
from tollgate_testkit.procs import Proc, python_module


class DemoUpstream(ABC):
    """A demo upstream (tollgate_testkit.upstream) on a loopback port, and its control API."""

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set(self, mode: str = "ok", delay: float = 0.0, size: int = 0) -> None:
        body = {"mode": mode, "delay": delay, "size": size}
        httpx.post(f"{self.url}/_control", content=json.dumps(body), timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/_control", timeout=5)
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    @property
    def requests(self) -> int:
        return int(self.stats()["requests"])

    @abstractmethod
    def stop(self) -> None:
        """Stop the server and release what it held (process, container)."""


class Upstream(DemoUpstream):
    """The demo upstream as a host process of this interpreter."""

    def __init__(self, name: str, workdir: Path, mode: str = "ok") -> None:
        super().__init__(name, free_port())
        self.proc = Proc(
            python_module(
                "tollgate_testkit.upstream",
                "--port",
                str(self.port),
                "--name",
                name,
                "--mode",
                mode,
            ),
            log=workdir / f"upstream-{name}.log",
        )
        self.proc.wait_port(self.port)

    def stop(self) -> None:
        self.proc.stop()
