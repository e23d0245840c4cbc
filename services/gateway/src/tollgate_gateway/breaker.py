"""Passive health: a circuit breaker per upstream endpoint (pure; the clock is passed in).

closed --N consecutive failures--> open --ejectSeconds pass--> half-open (one probe)
half-open --probe succeeds--> closed;  --probe fails--> open again.

Planning a request only asks (``admits``); the probe is claimed when an attempt is really sent
(``allows``). A plan lists endpoints that failover and roundRobin never send to, and a probe
claimed for those was never released: the healed endpoint stayed ejected for good.
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

    def admits(self, now: float) -> bool:
        """Whether a plan may list this endpoint now: closed, or half-open with its probe free.
        Claims nothing."""
        return self.failures < self.failure_threshold or (
            now >= self.open_until and not self.probing
        )

    def allows(self, now: float) -> bool:
        """Whether a request may be sent to this endpoint now (claims the probe when half-open):
        called as the attempt starts, so every claim ends in success, failure or release."""
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
