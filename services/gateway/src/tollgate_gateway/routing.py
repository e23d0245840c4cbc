"""Longest-prefix route matching, precomputed per table (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


def prefixes_of(path: str) -> Iterable[str]:
    """Candidate prefixes of a path, longest first: /a/b/c, /a/b, /a, /."""
    p = path.rstrip("/") or "/"
    while True:
        yield p
        if p == "/":
            return
        cut = p.rfind("/")
        p = p[:cut] or "/"


class Router(Generic[T]):
    """Maps a path to the entry whose prefix is the longest whole-segment match.

    "/eod" matches "/eod" and "/eod/AAPL" but not "/eodx": prefixes match whole segments only.
    A dict lookup per path segment: O(depth), independent of the number of routes.
    """

    def __init__(self, entries: dict[str, T]) -> None:
        self._entries = dict(entries)

    def match(self, path: str) -> T | None:
        entries = self._entries
        for prefix in prefixes_of(path):
            hit = entries.get(prefix)
            if hit is not None:
                return hit
        return None

    def __len__(self) -> int:
        return len(self._entries)
