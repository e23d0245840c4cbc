"""Redis and the demo upstream as Docker containers, started through testcontainers.

The container provider of the fixtures (``TOLLGATE_FIXTURES=containers``, see
``tollgate_testkit.provider``). Its rules:

- Only the images ``hack/images.sh`` builds (``local/redis:7``, ``tollgate/testkit:dev``), never
  pulled: ``unavailable()`` says why the provider cannot run here (no engine, an image missing)
  before anything starts, and the caller skips or falls back with that reason.
- Ryuk, testcontainers' reaper, is off: its image (testcontainers/ryuk) is pulled from a registry.
  Whoever starts a container removes it (the fixtures' finalizers), and an atexit hook removes
  what an interrupted run still holds.
- Ports are published on 127.0.0.1 only, on a host port chosen here rather than by Docker, so a
  Redis restarted for an outage test comes back on the address its clients already hold.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import docker
import httpx
import redis
from docker.errors import DockerException, NotFound
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer

from tollgate_testkit.ports import free_port
from tollgate_testkit.upstreams import DemoUpstream

REDIS_IMAGE = "local/redis:7"
UPSTREAM_IMAGE = "tollgate/testkit:dev"
IMAGES = (REDIS_IMAGE, UPSTREAM_IMAGE)
# Marks this process's containers, so a leftover of a killed run can be found by its owner's pid.
LABEL = "dev.tollgate.testkit.pid"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"

# The same as TESTCONTAINERS_RYUK_DISABLED=true, without depending on the caller's environment.
testcontainers_config.ryuk_disabled = True


def missing_reason(missing: Sequence[str]) -> str | None:
    """Why the provider cannot start, given the images that are not built locally."""
    if not missing:
        return None
    return f"{', '.join(missing)} not built locally (never pulled): run `make images`"


def unavailable(images: Sequence[str] = IMAGES) -> str | None:
    """None when a Docker engine answers and holds every image; else the reason it cannot run."""
    unreachable = _engine_unreachable(os.environ.get("DOCKER_HOST", DEFAULT_DOCKER_HOST))
    if unreachable:
        return f"no Docker engine: {unreachable}"
    try:
        client = docker.from_env(timeout=5)
    except (DockerException, OSError) as exc:  # requests' errors are OSErrors
        return f"no Docker engine: {exc}"
    try:
        client.ping()
        missing = [image for image in images if not _has_image(client, image)]
    except (DockerException, OSError) as exc:
        return f"no Docker engine: {exc}"
    finally:
        client.close()
    return missing_reason(missing)


def _engine_unreachable(host: str) -> str | None:
    # Connect first: docker-py's client asks the engine its API version while it is being built,
    # and when that fails the socket it opened stays open with no client to close it (a
    # ResourceWarning, an error under this suite's warning filter).
    url = urlsplit(host)
    address: str | tuple[str, int]
    if url.scheme == "unix":
        family, address = socket.AF_UNIX, url.path
    elif url.scheme == "tcp" and url.hostname:
        family, address = socket.AF_INET, (url.hostname, url.port or 2375)
    else:
        return None  # ssh://, npipe://: left to docker-py
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        try:
            s.connect(address)
        except OSError as exc:
            return f"{host}: {exc}"
    return None


def _has_image(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except NotFound:
        return False
    return True


class ContainerProcess:
    """A started container, handled the way tests handle a process (alive, kill, stop)."""

    _live: dict[str, ContainerProcess] = {}

    def __init__(self, container: DockerContainer, log: Path) -> None:
        self.container = container
        self.log_path = log
        self.id = container.get_wrapped_container().id or ""
        ContainerProcess._live[self.id] = self

    def alive(self) -> bool:
        try:
            wrapped = self.container.get_wrapped_container()
            wrapped.reload()
        except NotFound:
            return False
        # A SIGSTOPped server is still "running", as a stopped process is still alive.
        return wrapped.status == "running"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send a signal to the server (PID 1 of the container): SIGKILL, SIGSTOP, SIGCONT..."""
        if self.alive():
            self.container.get_wrapped_container().kill(signal=int(sig))

    def output(self) -> str:
        try:
            stdout, stderr = self.container.get_logs()
        except NotFound:
            return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return (stdout + stderr).decode(errors="replace")

    def stop(self) -> None:
        """Remove the container at once (``docker rm -f``: these servers keep nothing worth a
        graceful stop), keeping its output in the log file."""
        if ContainerProcess._live.pop(self.id, None) is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text(self.output())
        with contextlib.suppress(NotFound):  # removed already (docker rm by hand, a crash)
            self.container.stop()

    @classmethod
    def remove_all(cls) -> None:
        for proc in list(cls._live.values()):
            proc.stop()


atexit.register(ContainerProcess.remove_all)


def start(
    image: str,
    *,
    port: int,
    host_port: int,
    log: Path,
    ready: Callable[[], bool],
    command: Sequence[str] = (),
    entrypoint: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> ContainerProcess:
    """Start ``image`` with ``port`` published on 127.0.0.1:``host_port``; wait for ``ready()``."""
    reason = unavailable([image])
    if reason:
        raise RuntimeError(reason)
    container = (
        DockerContainer(image)
        .with_command(list(command))
        .with_kwargs(
            labels={LABEL: str(os.getpid())},
            entrypoint=None if entrypoint is None else list(entrypoint),  # None: the image's
        )
    )
    # testcontainers hands `ports` to docker-py unchanged, which takes (address, port); its own
    # annotation says int, and with_bind_ports has no address (0.0.0.0 publishes on every
    # interface).
    container.ports[f"{port}/tcp"] = cast("int", ("127.0.0.1", host_port))
    try:
        container.start()
    except DockerException:
        container.stop()  # created but not started (the port was taken): remove it
        raise
    proc = ContainerProcess(container, log)
    try:
        _wait(proc, ready, timeout)
    except BaseException:
        proc.stop()
        raise
    return proc


def _wait(proc: ContainerProcess, ready: Callable[[], bool], timeout: float) -> None:
    # A published port accepts TCP as soon as docker-proxy listens, before the server inside
    # does: readiness is a protocol answer (PING, /_control), never a bare connect.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"container exited:\n{proc.output()[-4000:]}")
        if ready():
            return
        time.sleep(0.05)
    raise TimeoutError(f"container not ready:\n{proc.output()[-4000:]}")


class ContainerRedis:
    """Debian's redis-server in ``local/redis:7``, empty, on a loopback port."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc = start(
            REDIS_IMAGE,
            port=6379,
            host_port=self.port,
            log=workdir / "redis.log",
            ready=self._answers,
            # Clients reach it through Docker's bridge, not loopback, so protected mode (which
            # refuses non-loopback clients without a password) is off; the port is published on
            # 127.0.0.1 only.
            command=[
                *("--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no"),
                *("--save", "", "--appendonly", "no"),
            ],
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _answers(self) -> bool:
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        self.proc.stop()

    def restart(self) -> None:
        """Remove and start again on the same port (an outage, then recovery), empty."""
        self.stop()
        self.__init__(self.workdir, self.port)  # type: ignore[misc]


class ContainerUpstream(DemoUpstream):
    """The demo upstream of the ``tollgate/testkit:dev`` image (the chart's demo upstreams run
    the same), published on a loopback port."""

    def __init__(self, name: str, workdir: Path, mode: str = "ok") -> None:
        super().__init__(name, free_port())
        self.proc = start(
            UPSTREAM_IMAGE,
            port=9001,
            host_port=self.port,
            log=workdir / f"upstream-{name}.log",
            ready=self._answers,
            entrypoint=["python", "-m", "tollgate_testkit.upstream"],
            command=["--host", "0.0.0.0", "--port", "9001", "--name", name, "--mode", mode],
        )

    def _answers(self) -> bool:
        # /_control, not /healthz: the upstream counts /healthz as a request, tests count those.
        try:
            return httpx.get(f"{self.url}/_control", timeout=1).is_success
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.proc.stop()
