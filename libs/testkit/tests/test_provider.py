"""TOLLGATE_FIXTURES picks the provider; containers fall back to processes with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tollgate_testkit.provider import decide, from_env, parse, parse_redis


@pytest.mark.parametrize(
    ("value", "kind"), [(None, "process"), ("", "process"), (" Containers ", "containers")]
)
def test_parse_defaults_to_processes(value: str | None, kind: str) -> None:
    """Unset or empty means process; the value is read case- and space-insensitively."""
    assert parse(value) == kind


def test_parse_refuses_an_unknown_provider() -> None:
    """A typo is an error naming the variable and the choices, never a silent default."""
    with pytest.raises(ValueError, match=r"TOLLGATE_FIXTURES='docker'.*process, containers"):
        parse("docker")


def test_containers_where_they_can_run() -> None:
    """Asked for and available: containers."""
    assert decide("containers", None).kind == "containers"


def test_containers_fall_back_with_the_reason() -> None:
    """Asked for but unavailable: processes, and the note says why."""
    provider = decide("containers", "no Docker engine: socket missing")
    assert provider.kind == "process"
    assert "no Docker engine: socket missing" in provider.note


def test_processes_never_look_for_docker() -> None:
    """The default ignores whatever Docker's state is."""
    assert decide("process", "no Docker engine").kind == "process"


@pytest.mark.parametrize(
    ("value", "kind"), [(None, "plain"), ("", "plain"), (" Cluster ", "cluster")]
)
def test_parse_redis_defaults_to_one_plain_server(value: str | None, kind: str) -> None:
    """TOLLGATE_TEST_REDIS: unset or empty means one plain redis-server."""
    assert parse_redis(value) == kind


def test_parse_redis_refuses_an_unknown_kind() -> None:
    """A typo is an error naming the variable and the choices."""
    with pytest.raises(ValueError, match=r"TOLLGATE_TEST_REDIS='sentinel'.*plain, cluster"):
        parse_redis("sentinel")


def test_the_cluster_kind_is_kept_and_said() -> None:
    """TOLLGATE_TEST_REDIS=cluster: the provider starts the one-node cluster and says so."""
    provider = from_env({"TOLLGATE_TEST_REDIS": "cluster"})
    assert (provider.kind, provider.redis_kind) == ("process", "cluster")
    assert "Redis Cluster" in provider.note
    assert from_env({}).redis_kind == "plain"


def test_the_cluster_fixture_is_a_cluster_and_restarts(tmp_path: Path) -> None:
    """The cluster kind's Redis enforces CROSSSLOT, and a restart brings a working node back."""
    server = from_env({"TOLLGATE_TEST_REDIS": "cluster"}).redis(tmp_path)
    try:
        for _ in range(2):
            client = redis.Redis.from_url(server.url)
            with pytest.raises(redis.ResponseError, match="same slot"):
                client.mget("a", "b")
            assert client.set("a", 1)
            client.close()
            server.restart()
    finally:
        server.stop()
