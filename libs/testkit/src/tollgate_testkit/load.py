"""Steady, bounded background load for fault tests: a few client threads, each a keep-alive
httpx client as a real API consumer would use, recording every outcome."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class Outcomes:
    """What the clients saw: status codes, and transport errors by exception name."""

    codes: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    charged: int = 0  # answers that carried x-credits-remaining: the ones a credit paid for
    samples: list[str] = field(default_factory=list)  # the first few failures, for the message

    @property
    def total(self) -> int:
        return sum(self.codes.values()) + sum(self.errors.values())

    @property
    def failed(self) -> int:
        return self.total - self.codes[200]

    def __str__(self) -> str:
        return (
            f"{self.total} requests: codes {dict(self.codes)}, errors {dict(self.errors)}; "
            f"first failures: {self.samples}"
        )


class Load:
    """`workers` threads GETting `url` back to back (with `pause` between requests) until stop(),
    or until `limit` requests or `seconds` have passed, whichever comes first."""

    def __init__(
        self,
        url: str,
        *,
        workers: int = 4,
        pause: float = 0.01,
        limit: int = 20_000,
        seconds: float = 120,
    ) -> None:
        self.url = url
        self.pause = pause
        self.limit = limit
        self.deadline = time.monotonic() + seconds
        self.outcomes = Outcomes()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> Outcomes:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        return self.outcomes

    def _done(self) -> bool:
        return (
            self._stop.is_set()
            or time.monotonic() > self.deadline
            or self.outcomes.total >= self.limit
        )

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._done():
                try:
                    r = client.get(self.url)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.outcomes.errors[type(exc).__name__] += 1
                        self._sample(repr(exc))
                else:
                    with self._lock:
                        self.outcomes.codes[r.status_code] += 1
                        if r.status_code == 200 and "x-credits-remaining" in r.headers:
                            self.outcomes.charged += 1
                        elif r.status_code != 200:
                            self._sample(f"{r.status_code} {r.text[:200]}")
                time.sleep(self.pause)

    def _sample(self, what: str) -> None:
        if len(self.outcomes.samples) < 5:
            self.outcomes.samples.append(f"{time.strftime('%H:%M:%S')} {what}")

    def wait_for(self, requests: int, timeout: float = 30) -> None:
        """Block until at least `requests` outcomes are in (the load is really flowing)."""
        deadline = time.monotonic() + timeout
        while self.outcomes.total < requests:
            if time.monotonic() > deadline:
                raise AssertionError(f"load did not reach {requests} requests: {self.outcomes}")
            time.sleep(0.1)
