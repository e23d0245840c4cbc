"""bench.otlpenc runs, and times encoders of one batch that agree byte for byte."""

from __future__ import annotations

import sys

import pytest

from bench import otlpenc


def test_it_reports_both_encoders_on_one_batch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["otlpenc", "--requests", "4", "--runs", "2"])
    otlpenc.main()
    out = capsys.readouterr().out
    assert out.startswith("16 spans, ")  # four spans a request
    assert "sdk encoder" in out
    assert "x faster" in out


def test_it_refuses_to_time_encoders_that_disagree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlpenc, "export_request", lambda spans: b"")
    monkeypatch.setattr(sys, "argv", ["otlpenc", "--requests", "1", "--runs", "1"])
    with pytest.raises(SystemExit, match="the encodings differ"):
        otlpenc.main()
