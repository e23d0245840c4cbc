"""Longest-prefix matching over whole path segments."""

from __future__ import annotations

from tollgate_gateway.routing import Router, prefixes_of


def test_prefixes_longest_first() -> None:
    """Candidates run from the whole path down to the root."""
    assert list(prefixes_of("/a/b/c")) == ["/a/b/c", "/a/b", "/a", "/"]


def test_longest_prefix_wins() -> None:
    """/eod/intraday beats /eod for paths under it."""
    r = Router({"/eod": "eod", "/eod/intraday": "intra"})
    assert r.match("/eod/intraday/AAPL") == "intra"
    assert r.match("/eod/AAPL") == "eod"
    assert r.match("/eod") == "eod"


def test_prefix_matches_whole_segments_only() -> None:
    """/eod does not claim /eodx."""
    assert Router({"/eod": "eod"}).match("/eodx/AAPL") is None


def test_root_route_catches_everything() -> None:
    """A / route is the fallback."""
    r = Router({"/": "root", "/eod": "eod"})
    assert r.match("/other/x") == "root"
    assert r.match("/eod/x") == "eod"
