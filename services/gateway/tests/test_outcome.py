"""What an upstream answer means."""

from __future__ import annotations

import pytest

from tollgate_gateway.outcome import Verdict, classify


@pytest.mark.parametrize(
    ("status", "body", "when", "verdict"),
    [
        (200, b'{"status": true}', "jsonStatusTrue", Verdict.GOOD),
        (200, b'{"status": false}', "jsonStatusTrue", Verdict.NODATA),
        (200, b'{"data": 1}', "jsonStatusTrue", Verdict.NODATA),
        (200, b"{not json", "jsonStatusTrue", Verdict.FAIL),
        (200, b"{not json", "http2xx", Verdict.GOOD),
        (404, b"", "http2xx", Verdict.NODATA),
        (500, b'{"status": true}', "jsonStatusTrue", Verdict.FAIL),
        (503, b"", "http2xx", Verdict.FAIL),
        (200, b'"status"', "jsonStatusTrue", Verdict.NODATA),
    ],
)
def test_classify(status: int, body: bytes, when: str, verdict: Verdict) -> None:
    """Each answer shape maps to its verdict."""
    assert classify(status, body, when) is verdict
