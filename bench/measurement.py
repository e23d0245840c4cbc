"""One timed wrk run of a --scale case, with the server's (and its helpers') CPU per request."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

from bench import load
from bench.report import Sample
from bench.servers import Server
from bench.targets import LOAD_CORE

SETTLE_SECONDS = 1.0


def measure(
    args: argparse.Namespace,
    server: Server,
    url: str,
    helpers: list[Server],
    name: str,
    conns: int | None = None,
) -> Sample:
    """wrk on ``url`` after a warm-up, with ``conns`` connections (default ``--conns``)."""
    c = conns or args.conns
    with contextlib.suppress(ValueError):
        load.wrk(LOAD_CORE, url, args.warmup, c)
    # Let the warm-up's connections close first: 1,024 clients leaving at once and 1,024 new ones
    # arriving in the same millisecond put a few requests of the timed run past wrk's 2 s
    # timeout, on the teardown and not on the case measured.
    time.sleep(SETTLE_SECONDS)
    before = server.cpu_seconds(), sum(h.cpu_seconds() for h in helpers)
    s = load.wrk(LOAD_CORE, url, args.seconds, c)
    if s.requests:
        cpu = server.cpu_seconds() - before[0]
        s.cpu_us = cpu / s.requests * 1e6
        s.path_cpu_us = (cpu + sum(h.cpu_seconds() for h in helpers) - before[1]) / s.requests * 1e6
    print(
        f"{name:16s} {s.rps:>9,.0f} req/s  p99 {s.p99_ms:7.2f} ms  CPU {s.cpu_us or 0:6.1f} us/req"
        f"  path {s.path_cpu_us or 0:6.1f} us/req  errors {s.errors}",
        file=sys.stderr,
        flush=True,
    )
    return s
