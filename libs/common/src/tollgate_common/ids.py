"""Unique ids with no syscall each: a random per-process prefix and a counter.

uuid4 makes a getrandom() syscall per id, which py-spy showed on the per-request paths (request
ids, charge ids). Forked workers draw a prefix of their own, so ids never repeat across them.
"""

from __future__ import annotations

import itertools
import os


class UniqueIds:
    def __init__(self, prefix_bytes: int) -> None:
        self._prefix_bytes = prefix_bytes
        self._reseed()
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self.prefix = os.urandom(self._prefix_bytes).hex()
        self._prefix_b = self.prefix.encode()
        self._seq = itertools.count()

    def text(self) -> str:
        return f"{self.prefix}{next(self._seq):x}"

    def fixed_bytes(self) -> bytes:
        """The prefix and ten hex digits of the counter, as bytes (header values)."""
        return self._prefix_b + b"%010x" % next(self._seq)
