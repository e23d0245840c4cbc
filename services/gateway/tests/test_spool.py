"""The refund spool on a real file: what one process spools, the next one loads."""

from __future__ import annotations

from pathlib import Path

from tollgate_gateway.spool import Spool


def test_spooled_ids_outlive_the_process(tmp_path: Path) -> None:
    """Ids added by one Spool are loaded by a fresh one on the same file."""
    Spool(tmp_path / "s").add(["c1", "c2"])
    assert sorted(Spool(tmp_path / "s").load()) == ["c1", "c2"]


def test_discarded_ids_are_gone_and_the_rest_kept(tmp_path: Path) -> None:
    """A landed refund leaves the file; the others stay."""
    first = Spool(tmp_path / "s")
    first.add(["c1", "c2", "c3"])
    first.discard(["c2"])
    assert sorted(Spool(tmp_path / "s").load()) == ["c1", "c3"]


def test_an_id_is_spooled_once(tmp_path: Path) -> None:
    """Adding an id twice writes it once."""
    s = Spool(tmp_path / "s")
    s.add(["c1"])
    s.add(["c1"])
    assert (tmp_path / "s").read_text() == "c1\n"


def test_off_without_a_path() -> None:
    """No path: nothing is written, nothing loaded."""
    s = Spool(None)
    s.add(["c1"])
    assert s.load() == []
