"""bench.instructions' reading of a callgrind dump (pure on the file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.instructions import Count, total


def test_total_is_the_dump_summary(tmp_path: Path) -> None:
    dump = tmp_path / "callgrind.out.1"
    dump.write_text(
        "# callgrind format\nevents: Ir\nfl=(1) a.c\nfn=(1) f\n3 120\nsummary: 987654\n"
    )
    assert total(dump) == 987654
    assert Count("r", 1_000, 987654).per_request == pytest.approx(987.654)


def test_a_dump_without_summary_is_an_error(tmp_path: Path) -> None:
    dump = tmp_path / "callgrind.out.2"
    dump.write_text("events: Ir\n")
    with pytest.raises(ValueError, match="no summary"):
        total(dump)
