"""pytest fixtures that start real servers: registered by the root conftest with
``pytest_plugins = ["tollgate_testkit.fixtures"]``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tollgate_testkit.pki import make_server_pki
from tollgate_testkit.ports import free_port
from tollgate_testkit.procs import Proc, python_module
from tollgate_testkit.receivers import SmtpServer, WebhookReceiver
from tollgate_testkit.redis_server import AclUser, RedisServer


class Upstream:
    """A running demo upstream (tollgate_testkit.upstream) and its control API."""

    def __init__(self, name: str, workdir: Path, mode: str = "ok") -> None:
        self.name = name
        self.port = free_port()
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

    def stop(self) -> None:
        self.proc.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session; tests that need a clean one use ``redis_url``."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's redis-server, emptied before the test."""
    if not redis_server.proc.alive():  # a test may have stopped it to simulate an outage
        redis_server.restart()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def upstream_factory(tmp_path: Path) -> Iterator[Callable[..., Upstream]]:
    """Start demo upstreams: ``upstream_factory("a", mode="ok")``; all stopped after the test."""
    started: list[Upstream] = []

    def make(name: str = "up", mode: str = "ok") -> Upstream:
        up = Upstream(name, tmp_path, mode)
        started.append(up)
        return up

    yield make
    for up in started:
        up.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on a loopback port."""
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A real HTTP endpoint that records webhook posts."""
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A kubeconfig for a real API server: TOLLGATE_TEST_KUBECONFIG if set (kind, any cluster),
    else etcd + kube-apiserver started here (built by ``make install``)."""
    import os

    from tollgate_testkit.kube import ApiServer

    given = os.environ.get("TOLLGATE_TEST_KUBECONFIG")
    if given:
        yield Path(given)
        return
    try:
        server = ApiServer(tmp_path_factory.mktemp("kube"))
    except FileNotFoundError as exc:
        pytest.skip(f"no API server: {exc}")
    yield server.kubeconfig
    server.stop()


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server that speaks only TLS, with a certificate from a throwaway CA, and one
    ACL user (no default user). Clients trust the CA through SSL_CERT_FILE=tls_redis.tls.ca."""
    work = tmp_path_factory.mktemp("tls-redis")
    pki = make_server_pki(work / "pki")
    server = RedisServer(work, tls=pki, user=AclUser("tollgate", "s3cret-pw"))
    yield server
    server.stop()
