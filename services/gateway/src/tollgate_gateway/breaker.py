"""Passive health: a circuit breaker per upstream endpoint (pure; the clock is passed in).

closed --N consecutive failures--> open --ejectSeconds pass--> half-open (one probe)
half-open --probe succeeds--> closed;  --probe fails--> open again.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Breaker:
    failure_threshold: int
    eject_seconds: float
    failures: int = 0
    open_until: float = 0.0
    probing: bool = False
    ejections: int = 0

    def allows(self, now: float) -> bool:
        """Whether a request may go to this endpoint now (claims the probe when half-open)."""
        if self.failures < self.failure_threshold:
            return True
        if now < self.open_until or self.probing:
            return False
        self.probing = True
        return True

    def is_open(self, now: float) -> bool:
        return self.failures >= self.failure_threshold and (now < self.open_until or self.probing)

    def success(self) -> None:
        self.failures = 0
        self.probing = False

    def failure(self, now: float) -> bool:
        """Record a failure; True when this failure ejected the endpoint."""
        self.failures += 1
        was_probe, self.probing = self.probing, False
        if self.failures >= self.failure_threshold and (was_probe or now >= self.open_until):
            self.open_until = now + self.eject_seconds
            self.ejections += 1
            return True
        return False

    def release(self) -> None:
        """A probe that ended without a verdict (cancelled) frees the slot for the next one."""
        self.probing = False
