"""The refund spool: a local file of charge ids still owed, for when Redis cannot hold them.

Why a file at all (issue 11): refunds are parked in Redis (refunds.py) so that any gateway lands
them after this one is gone. When Redis is the thing that is down, parking fails, and the refunds
owed at that moment lived only in this process's memory: a gateway restarted (SIGTERM, OOM kill,
SIGKILL) before Redis came back lost them, and with them credits the clients were owed. The spool
keeps exactly those. It is written only on that failure path (one append and fsync per failed
park), never per request, and read once at start. In the chart it lives on the pod's ``/tmp``
emptyDir, which outlives a container restart but not the pod: a pod deleted during a Redis outage
still loses what it spooled (stated in the README).

Format: one charge id per line. Ids that landed are dropped by rewriting the file (a rename, so a
crash leaves the old or the new list, never half of one). A charge id in it twice, or already
refunded, is harmless: refunds are idempotent by charge id.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


class Spool:
    """Charge ids owed, on local disk (see the module docstring); ``path=None``: off."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.held: set[str] = set()

    def load(self) -> list[str]:
        """What a previous process of this gateway left owed."""
        if self.path is None or not self.path.exists():
            return []
        ids = [line.strip() for line in self.path.read_text().splitlines() if line.strip()]
        self.held.update(ids)
        return ids

    def add(self, charge_ids: list[str]) -> None:
        fresh = [c for c in charge_ids if c not in self.held]
        if self.path is None or not fresh:
            return
        try:
            with self.path.open("a") as f:
                f.write("".join(f"{c}\n" for c in fresh))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            log.error("%d refunds not spooled (memory only): %r", len(fresh), exc)
            return
        self.held.update(fresh)

    def discard(self, charge_ids: list[str]) -> None:
        """Landed, or parked in Redis now: the file no longer needs them."""
        gone = self.held.intersection(charge_ids)
        if not gone or self.path is None:
            return
        self.held -= gone
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        try:
            tmp.write_text("".join(f"{c}\n" for c in sorted(self.held)))
            os.replace(tmp, self.path)
        except OSError as exc:  # kept in the file: a later refund of them is a no-op
            log.warning("refund spool not rewritten: %r", exc)
