"""pytest fixtures that start real servers: registered by the root conftest with
``pytest_plugins = ["tollgate_testkit.fixtures"]``.

Redis and the demo upstreams come from the session's provider (``fixture_provider``): host
processes by default, containers with ``TOLLGATE_FIXTURES=containers`` (tollgate_testkit.provider).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tollgate_testkit.pki import make_server_pki
from tollgate_testkit.provider import Provider, RedisHandle, from_env
from tollgate_testkit.receivers import SmtpServer, UsageReceiver, WebhookReceiver
from tollgate_testkit.redis_cluster import RedisClusterNodes
from tollgate_testkit.redis_server import AclUser, ClusterRedisServer, RedisServer
from tollgate_testkit.upstreams import DemoUpstream
from tollgate_testkit.upstreams import Upstream as Upstream  # where the tests import it from

PROVIDER = pytest.StashKey[Provider]()


def pytest_configure(config: pytest.Config) -> None:
    try:
        config.stash[PROVIDER] = from_env(os.environ)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> str:
    return f"tollgate fixtures: {config.stash[PROVIDER].note}"


@pytest.fixture(scope="session")
def fixture_provider(pytestconfig: pytest.Config) -> Provider:
    """The provider of Redis and demo upstreams (TOLLGATE_FIXTURES, default ``process``); a
    module may override it to run its tests on another provider."""
    return pytestconfig.stash[PROVIDER]


@pytest.fixture(scope="session")
def redis_kind(fixture_provider: Provider) -> str:
    """``plain`` or ``cluster`` (TOLLGATE_TEST_REDIS): what ``redis_server`` is. A test of what
    only one Redis can hold (data of the old, untagged layout) skips on ``cluster``."""
    return fixture_provider.redis_kind


@pytest.fixture
def old_layout_possible(redis_kind: str) -> None:
    """Skips the test on a Redis Cluster: data of the untagged layout (migration.py) never lived
    there, and migrate.lua spans slots."""
    if redis_kind == "cluster":
        pytest.skip("old-layout data never lives on a Redis Cluster (ledger/migration.py)")


@pytest.fixture(scope="session")
def redis_server(
    tmp_path_factory: pytest.TempPathFactory, fixture_provider: Provider
) -> Iterator[RedisHandle]:
    """One real redis-server for the session; tests that need a clean one use ``redis_url``."""
    server = fixture_provider.redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisHandle) -> str:
    """URL of the session's redis-server, emptied before the test."""
    if not redis_server.proc.alive():  # a test may have stopped it to simulate an outage
        redis_server.restart()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def cluster_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterRedisServer]:
    """One real redis-server in cluster mode holding every slot, for the session: CROSSSLOT is
    enforced for commands and scripts as on a many-node Redis Cluster."""
    server = ClusterRedisServer(tmp_path_factory.mktemp("cluster-redis"))
    yield server
    server.stop()


@pytest.fixture
def cluster_redis_url(cluster_redis_server: ClusterRedisServer) -> str:
    """URL of the session's one-node Redis Cluster, emptied before the test."""
    client = redis.Redis.from_url(cluster_redis_server.url)
    client.flushall()
    client.close()
    return cluster_redis_server.url


@pytest.fixture(scope="session")
def redis_cluster_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    """A real three-primary Redis Cluster on loopback for the session (tests may move slots
    between its nodes and restart them: ``redis_cluster`` settles and empties it)."""
    nodes = RedisClusterNodes(tmp_path_factory.mktemp("redis-cluster"), size=3)
    yield nodes
    nodes.stop()


@pytest.fixture
def redis_cluster(redis_cluster_session: RedisClusterNodes) -> RedisClusterNodes:
    """The session's three-node Redis Cluster, every node up and agreeing, emptied before the
    test; ``redis_cluster.url`` is its ``redis+cluster://`` URL."""
    for node in redis_cluster_session.nodes:
        if not node.proc.alive():  # a test may have stopped one
            node.restart()
    redis_cluster_session.wait_ok()
    redis_cluster_session.flushall()
    return redis_cluster_session


@pytest.fixture
def upstream_factory(
    tmp_path: Path, fixture_provider: Provider
) -> Iterator[Callable[..., DemoUpstream]]:
    """Start demo upstreams: ``upstream_factory("a", mode="ok")``; all stopped after the test."""
    started: list[DemoUpstream] = []

    def make(name: str = "up", mode: str = "ok") -> DemoUpstream:
        up = fixture_provider.upstream(name, tmp_path, mode)
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


@pytest.fixture
def usage_receiver() -> Iterator[UsageReceiver]:
    """A real billing endpoint (OpenMeter's and Stripe's formats) that validates and records."""
    receiver = UsageReceiver()
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
    ACL user (no default user). Clients trust the CA through SSL_CERT_FILE=tls_redis.tls.ca.
    Always a process: the TLS files live on the host."""
    work = tmp_path_factory.mktemp("tls-redis")
    pki = make_server_pki(work / "pki")
    server = RedisServer(work, tls=pki, user=AclUser("tollgate", "s3cret-pw"))
    yield server
    server.stop()
