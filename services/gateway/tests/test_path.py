"""The one normalized path the gateway routes and sends upstream."""

from __future__ import annotations

import pytest

from tollgate_gateway.errors import BadRequest
from tollgate_gateway.path import normalize


def test_a_plain_path_is_kept_as_sent() -> None:
    """No escape, no dot segment: the path as it came."""
    assert normalize(b"/api/v1/eod/AAPL.US") == "/api/v1/eod/AAPL.US"


def test_escapes_of_unreserved_characters_are_decoded() -> None:
    """%61 is "a" (RFC 3986 §6.2.2.2): every spelling of a path routes alike."""
    assert normalize(b"/%61pi/v1/bi/t%7E10") == "/api/v1/bi/t~10"


def test_other_escapes_stay_encoded_in_upper_case() -> None:
    """%2F stays data, never a separator; hex is upper-cased (RFC 3986 §6.2.2.1)."""
    assert normalize(b"/eod/a%2fb%20c%25") == "/eod/a%2Fb%20c%25"


@pytest.mark.parametrize(
    "raw",
    [
        b"/eod/../admin",
        b"/eod/./x",
        b"/eod/..",
        b"/eod/%2e%2e/admin",
        b"/eod/.%2E/admin",
        b"/eod/..%2Fadmin",
        b"/eod/x%2F..%2F..%2Fadmin",
        b"/eod/..%5Cadmin",
        b"/eod/..;x/admin",
    ],
)
def test_dot_segments_are_refused_however_spelt(raw: bytes) -> None:
    """ "." and "..", plain, encoded, or hidden behind %2F, %5C or ";": 400."""
    with pytest.raises(BadRequest):
        normalize(raw)


def test_dots_inside_a_segment_are_data() -> None:
    """Only whole "." / ".." segments are dot segments."""
    assert normalize(b"/eod/..a/b.../.x") == "/eod/..a/b.../.x"


@pytest.mark.parametrize("raw", [b"/eod/%zz", b"/eod/%4", b"/eod/%"])
def test_a_malformed_escape_is_refused(raw: bytes) -> None:
    """%zz, a short or a lone %: 400."""
    with pytest.raises(BadRequest):
        normalize(raw)
