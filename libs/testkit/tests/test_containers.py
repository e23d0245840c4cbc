"""The container provider: local images only, loopback-only ports, every container removed."""

from __future__ import annotations

import gc
import signal
import warnings
from pathlib import Path

import docker
import httpx
import pytest
import redis
from docker.errors import NotFound

from tollgate_testkit.containers import (
    LABEL,
    ContainerProcess,
    ContainerRedis,
    ContainerUpstream,
    missing_reason,
    start,
    unavailable,
)
from tollgate_testkit.upstream import eod

REASON = unavailable()
needs_docker = pytest.mark.skipif(REASON is not None, reason=f"container provider: {REASON}")


def exists(container_id: str) -> bool:
    client = docker.from_env()
    try:
        client.containers.get(container_id)
    except NotFound:
        return False
    finally:
        client.close()
    return True


def test_missing_images_are_named_with_the_remedy() -> None:
    """The reason names every missing image and says they are built, not pulled."""
    reason = missing_reason(["local/redis:7", "tollgate/testkit:dev"])
    assert reason is not None
    assert "local/redis:7, tollgate/testkit:dev" in reason
    assert "never pulled" in reason
    assert "make images" in reason
    assert missing_reason([]) is None


def test_no_engine_is_a_reason_and_leaves_no_socket_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no engine listens, unavailable() says where it looked, and closes what it opened."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reason = unavailable()
        gc.collect()  # an unclosed socket warns when it is collected
    assert reason is not None
    assert reason.startswith("no Docker engine")
    assert f"{tmp_path}/docker.sock" in reason
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


@needs_docker
def test_an_absent_image_is_refused_not_pulled(tmp_path: Path) -> None:
    """Starting an image that is not built locally fails at once, and nothing is pulled."""
    image = "tollgate/absent:never"
    with pytest.raises(RuntimeError, match="not built locally"):
        start(image, port=1, host_port=1, log=tmp_path / "log", ready=lambda: True)
    client = docker.from_env()
    try:
        assert client.images.list(name="tollgate/absent") == []
    finally:
        client.close()


@needs_docker
def test_redis_is_published_on_loopback_only_and_removed(tmp_path: Path) -> None:
    """Redis answers on 127.0.0.1; its port is bound to no other address; stop removes it."""
    server = ContainerRedis(tmp_path)
    cid = server.proc.id
    attrs = server.proc.container.get_wrapped_container().attrs
    bindings = attrs["HostConfig"]["PortBindings"]["6379/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(server.port)}]
    assert attrs["Config"]["Labels"][LABEL]
    assert redis.Redis.from_url(server.url).ping()
    server.stop()
    assert not exists(cid)
    assert not server.proc.alive()


@needs_docker
def test_redis_restarts_empty_on_the_same_address(tmp_path: Path) -> None:
    """restart() is an outage then recovery: same URL, a fresh empty Redis."""
    server = ContainerRedis(tmp_path)
    try:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        url = server.url
        server.restart()
        assert server.url == url
        assert client.get("k") is None
    finally:
        server.stop()


@needs_docker
def test_sigstop_freezes_redis_and_sigcont_resumes_it(tmp_path: Path) -> None:
    """Signals reach the server as they reach a process: SIGSTOP hangs it, SIGCONT resumes."""
    server = ContainerRedis(tmp_path)
    client = redis.Redis.from_url(server.url, socket_timeout=0.3)
    try:
        client.set("k", "v")
        server.proc.kill(signal.SIGSTOP)
        with pytest.raises(redis.TimeoutError):
            client.get("k")
        server.proc.kill(signal.SIGCONT)
        assert client.get("k") == b"v"
    finally:
        client.close()
        server.stop()


@needs_docker
def test_upstream_serves_the_demo_data_and_its_control_api(tmp_path: Path) -> None:
    """The image's upstream serves the bars the source computes and counts the requests."""
    up = ContainerUpstream("a", tmp_path)
    try:
        body = httpx.get(f"{up.url}/eod/AAPL?x=1").json()
        assert body == {"status": True, "data": eod("AAPL", "x=1"), "server": "a"}
        assert up.requests == 1
        up.set("error500")
        assert httpx.get(f"{up.url}/eod/AAPL").status_code == 500
    finally:
        up.stop()
    assert not exists(up.proc.id)
    assert (tmp_path / "upstream-a.log").exists()  # its output outlives the container


@needs_docker
def test_remove_all_clears_what_an_interrupted_run_holds(tmp_path: Path) -> None:
    """The atexit backstop removes every container still running, and stop after it is a no-op."""
    servers = [ContainerRedis(tmp_path / str(i)) for i in range(2)]
    ids = [s.proc.id for s in servers]
    ContainerProcess.remove_all()
    assert not any(exists(i) for i in ids)
    for s in servers:
        s.stop()
