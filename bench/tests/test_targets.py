"""Which rows a run measures (pure: nothing is started)."""

from __future__ import annotations

import pytest

from bench.targets import TARGETS, select


def test_default_rows_leave_out_the_variants() -> None:
    """The default run has every peer and Tollgate row, not the serving variants."""
    picked = [t.name for t in select("", variants=False)]
    assert picked[:4] == ["direct", "nginx", "traefik", "seed fastapi+httpx"]
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
