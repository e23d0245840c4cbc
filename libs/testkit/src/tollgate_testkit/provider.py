"""Which servers the fixtures start: host processes (the default) or Docker containers.

``TOLLGATE_FIXTURES=process`` (or unset): redis-server and the demo upstream run as host
processes (``RedisServer``, ``Upstream``). ``TOLLGATE_FIXTURES=containers``: the same servers from
the locally built images (``tollgate_testkit.containers``); where Docker or an image is missing,
the fixtures fall back to processes and the pytest header says why. Either way a test gets a
``RedisHandle`` and ``DemoUpstream``s from the session's ``Provider`` and cannot tell which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from tollgate_testkit.redis_server import RedisServer
from tollgate_testkit.upstreams import DemoUpstream, Upstream

ENV = "TOLLGATE_FIXTURES"
Kind = Literal["process", "containers"]
KINDS: tuple[Kind, ...] = ("process", "containers")


class ServerHandle(Protocol):
    """What a test may do to a server's process: ask if it runs, signal it (SIGSTOP...)."""

    def alive(self) -> bool: ...

    def kill(self, sig: int = ...) -> None: ...


class RedisHandle(Protocol):
    """A running Redis on a loopback port, whichever provider started it."""

    @property
    def port(self) -> int: ...

    @property
    def url(self) -> str: ...

    @property
    def proc(self) -> ServerHandle: ...

    def stop(self) -> None: ...

    def restart(self) -> None: ...


def parse(value: str | None) -> Kind:
    """The provider a TOLLGATE_FIXTURES value asks for; unset or empty is ``process``."""
    wanted = (value or "process").strip().lower()
    for kind in KINDS:
        if wanted == kind:
            return kind
    raise ValueError(f"{ENV}={value!r}: expected one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class Provider:
    """Starts the servers of one kind; ``note`` says which, and why when it is a fallback."""

    kind: Kind
    note: str

    def redis(self, workdir: Path, port: int | None = None) -> RedisHandle:
        if self.kind == "containers":
            # Imported here: testcontainers is a dev dependency, and the testkit image (which
            # runs the demo upstream) is built without dev dependencies.
            from tollgate_testkit.containers import ContainerRedis

            return ContainerRedis(workdir, port)
        return RedisServer(workdir, port)

    def upstream(self, name: str, workdir: Path, mode: str = "ok") -> DemoUpstream:
        if self.kind == "containers":
            from tollgate_testkit.containers import ContainerUpstream

            return ContainerUpstream(name, workdir, mode)
        return Upstream(name, workdir, mode)


def decide(wanted: Kind, containers_unavailable: str | None) -> Provider:
    """The provider to use, given the one asked for and why containers cannot run (or None)."""
    if wanted == "process":
        return Provider("process", f"process ({ENV}=process, the default)")
    if containers_unavailable is None:
        return Provider("containers", f"containers ({ENV}=containers)")
    return Provider("process", f"process: {ENV}=containers, but {containers_unavailable}")


def containers_unavailable() -> str | None:
    """Why the container provider cannot run here, or None when it can."""
    try:
        from tollgate_testkit.containers import unavailable
    except ImportError as exc:  # the dev dependency group is not installed
        return f"testcontainers is not installed ({exc}): uv sync --all-packages"
    return unavailable()


def from_env(environ: Mapping[str, str]) -> Provider:
    """The session's provider from TOLLGATE_FIXTURES (raises ValueError on an unknown value)."""
    wanted = parse(environ.get(ENV))
    return decide(wanted, containers_unavailable() if wanted == "containers" else None)
