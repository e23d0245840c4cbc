"""Which servers the fixtures start: host processes (the default) or Docker containers.

``TOLLGATE_FIXTURES=process`` (or unset): redis-server and the demo upstream run as host
processes (``RedisServer``, ``Upstream``). ``TOLLGATE_FIXTURES=containers``: the same servers from
the locally built images (``tollgate_testkit.containers``); where Docker or an image is missing,
the fixtures fall back to processes and the pytest header says why. Either way a test gets a
``RedisHandle`` and ``DemoUpstream``s from the session's ``Provider`` and cannot tell which.

``TOLLGATE_TEST_REDIS=cluster`` (issue 13): the Redis is a one-node Redis Cluster instead
(``ClusterRedisServer``, a host process whatever TOLLGATE_FIXTURES says: every slot on one node, so
a command or script whose keys span slots fails with CROSSSLOT as on many nodes, and SELECT of a
database other than 0 fails), to run the existing suites against the rules of a Cluster.
``plain`` (or unset): one ordinary redis-server.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

from tollgate_testkit.redis_server import ClusterRedisServer, RedisServer
from tollgate_testkit.upstreams import DemoUpstream, Upstream

ENV = "TOLLGATE_FIXTURES"
Kind = Literal["process", "containers"]
KINDS: tuple[Kind, ...] = ("process", "containers")
REDIS_ENV = "TOLLGATE_TEST_REDIS"
RedisKind = Literal["plain", "cluster"]
REDIS_KINDS: tuple[RedisKind, ...] = ("plain", "cluster")


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
    redis_kind: RedisKind = "plain"

    def redis(self, workdir: Path, port: int | None = None) -> RedisHandle:
        if self.redis_kind == "cluster":
            return RestartableCluster(workdir, port)
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


def parse_redis(value: str | None) -> RedisKind:
    """The Redis a TOLLGATE_TEST_REDIS value asks for; unset or empty is ``plain``."""
    wanted = (value or "plain").strip().lower()
    for kind in REDIS_KINDS:
        if wanted == kind:
            return kind
    raise ValueError(f"{REDIS_ENV}={value!r}: expected one of {', '.join(REDIS_KINDS)}")


class RestartableCluster(ClusterRedisServer):
    """The one-node cluster with the ``restart`` the tests of an outage call: a new node on the
    same port, every slot assigned again (RedisServer.restart would pass it a plain server's
    arguments)."""

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.proc.kill(sig)
        self.stop()
        ClusterRedisServer.__init__(self, self.workdir, self.port)


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
    provider = decide(wanted, containers_unavailable() if wanted == "containers" else None)
    if parse_redis(environ.get(REDIS_ENV)) == "plain":
        return provider
    note = f"{provider.note}; Redis: a one-node Redis Cluster, a process ({REDIS_ENV}=cluster)"
    return replace(provider, note=note, redis_kind="cluster")
