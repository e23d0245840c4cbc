"""Which rows a run measures (pure: nothing is started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.targets import TARGETS, Env, select


def test_default_rows_leave_out_the_variants() -> None:
    """The default run has every peer and Tollgate row, not the serving variants."""
    picked = [t.name for t in select("", variants=False)]
    assert picked[:3] == ["direct", "nginx", "traefik"]
    assert "seed fastapi+httpx" in picked
    assert "tollgate miss" in picked
    assert "tollgate hit" in picked
    assert not any("granian" in n or "stock" in n for n in picked)


def test_variants_add_every_other_row() -> None:
    """--variants runs every row."""
    assert len(select("", variants=True)) == len(TARGETS)


def test_only_keeps_the_baselines() -> None:
    """--only adds direct and traefik, which the ratios need, in table order."""
    picked = [t.name for t in select("tollgate hit granian,nginx", variants=False)]
    assert picked == ["direct", "nginx", "traefik", "tollgate hit granian"]


def test_only_rejects_unknown_names() -> None:
    """A typo in --only stops the run before anything starts."""
    with pytest.raises(SystemExit, match="unknown targets"):
        select("tollgate mis", variants=False)


def test_names_are_unique() -> None:
    """Rows are keyed by name."""
    assert len({t.name for t in TARGETS}) == len(TARGETS)


PEER_ROWS = {
    "envoy",
    "krakend",
    "envoy key+ratelimit",
    "traefik fwdauth+ratelimit",
    "krakend race",
}


def test_default_rows_have_every_peer() -> None:
    """By default every peer row runs, and the race rows of both KrakenD and Tollgate."""
    picked = {t.name for t in select("", variants=False)}
    assert PEER_ROWS | {"tollgate race"} <= picked


def test_peers_selects_families() -> None:
    """--peers envoy,krakend keeps those peers' rows and drops Traefik's metered row, never the
    Traefik baseline; --peers none drops every peer row."""
    picked = {t.name for t in select("", variants=False, peers_="envoy,krakend")}
    assert PEER_ROWS - picked == {"traefik fwdauth+ratelimit"}
    assert "traefik" in picked
    assert not {t.name for t in select("", variants=False, peers_="none")} & PEER_ROWS


def test_peers_rejects_unknown_names() -> None:
    """A typo in --peers stops the run before anything starts."""
    with pytest.raises(SystemExit, match="unknown peers"):
        select("", variants=False, peers_="envoi")


def test_metered_rows_are_smoked_and_count_their_helpers() -> None:
    """Every metered row (a key in its path) checks refusal and 429 before it is timed, except the
    hit rows that share a server with a smoked miss row; each names the services it calls."""
    by = {t.name: t for t in TARGETS}
    for name in ("envoy key+ratelimit", "traefik fwdauth+ratelimit"):
        assert by[name].smoke is not None
        assert by[name].peer
    for name in ("tollgate+auth miss", "tollgate+ledger miss"):
        assert by[name].smoke is not None
    assert all(t.helpers is not by["direct"].helpers for t in TARGETS if "key" in t.path)


def test_peer_rows_send_the_peer_key(tmp_path: Path) -> None:
    """A metered peer row's URL carries the peers' bench key; nothing is started for it."""
    env = Env(tmp_path)
    t = next(t for t in TARGETS if t.name == "envoy key+ratelimit")

    class FakeServer:
        port = 1234

    url = t.url(env, FakeServer())  # type: ignore[arg-type]
    assert url == f"http://127.0.0.1:1234/api/v1/eod/AAPL?api_key={env.keys.bench}"
    assert env.started == []
    assert len(env.keys.bench) == len(env.keys.smoke) == len("tg_12345678_") + 43
