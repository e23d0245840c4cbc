"""Which rows a run measures (pure: nothing is started)."""

from __future__ import annotations

import pytest

from bench.targets import TARGETS, select


def test_default_rows_leave_out_the_optional_ones() -> None:
    """The default run has every peer and Tollgate row, not the granian comparison."""
    picked = [t.name for t in select("", everything=False)]
    assert picked[:4] == ["direct", "nginx", "traefik", "seed fastapi+httpx"]
    assert "tollgate miss" in picked
    assert "tollgate hit" in picked
    assert not any("granian" in n for n in picked)


def test_all_rows() -> None:
    """--all runs every row."""
    assert len(select("", everything=True)) == len(TARGETS)


def test_only_keeps_the_baselines() -> None:
    """--only adds direct and traefik, which the ratios need, in table order."""
    picked = [t.name for t in select("tollgate hit granian,nginx", everything=False)]
    assert picked == ["direct", "nginx", "traefik", "tollgate hit granian"]


def test_only_rejects_unknown_names() -> None:
    """A typo in --only stops the run before anything starts."""
    with pytest.raises(SystemExit, match="unknown targets"):
        select("tollgate mis", everything=False)


def test_names_are_unique() -> None:
    """Rows are keyed by name."""
    assert len({t.name for t in TARGETS}) == len(TARGETS)
