"""The load generators, pinned to the load core: wrk for throughput (closed loop, as fast as the
server goes) and oha for latency at a fixed rate (open loop, with latency correction, so a stalled
server is charged for the queue it causes). wrk cannot hold a rate; when oha is not installed
(``cargo install oha --version 1.16.0 --locked``) the small open-loop loader in bench/fixedrate.py
takes its place, and the results say which one ran."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.report import Fixed, Sample, parse_fixedrate, parse_oha, parse_wrk

OHA_VERSION = "1.16.0"


def wrk(core: str, url: str, seconds: float, conns: int, headers: Sequence[str] = ()) -> Sample:
    """Saturating load; ``headers`` ("Name: value") are sent on every request."""
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{max(round(seconds), 1)}s", "--latency"]
    argv += _header_args(headers)
    argv.append(url)
    return parse_wrk(_run(core, argv, seconds))


def _header_args(headers: Sequence[str]) -> list[str]:
    """wrk's and oha's arguments for ``headers`` ("Name: value"): one ``-H`` each."""
    return [a for h in headers for a in ("-H", h)]


def oha_binary() -> str | None:
    found = shutil.which("oha")
    cargo = Path.home() / ".cargo" / "bin" / "oha"
    return found or (str(cargo) if cargo.exists() else None)


def fixed_loader() -> str:
    return "oha" if oha_binary() else "bench.fixedrate"


def fixed(
    core: str, url: str, rate: float, seconds: float, conns: int = 32, headers: Sequence[str] = ()
) -> Fixed:
    """p50/p99 at ``rate`` requests/s, spread over ``conns`` keep-alive connections;
    ``headers`` ("Name: value") are sent on every request."""
    oha = oha_binary()
    if oha is None:
        argv = [sys.executable, "-m", "bench.fixedrate", url, f"{rate}", f"{seconds}", f"{conns}"]
        argv += headers
        return parse_fixedrate(_run(core, argv, seconds), rate, seconds)
    argv = [
        oha,
        "-z",
        f"{seconds}s",
        "-q",
        f"{rate}",
        "-c",
        str(conns),
        "--latency-correction",
        # Otherwise a request in flight when the time is up counts as an error
        # ("aborted due to deadline"), one now and then in a clean run.
        "--wait-ongoing-requests-after-deadline",
        "--no-tui",
        "--output-format",
        "json",
        *_header_args(headers),
        url,
    ]
    return parse_oha(_run(core, argv, seconds), rate)


def _run(core: str, argv: list[str], seconds: float) -> str:
    done = subprocess.run(
        ["taskset", "-c", core, *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    return done.stdout
