"""``python -m bench.ab A B``: two bench rows compared in short alternating slices, as ratios.

    uv run --frozen --group bench python -m bench.ab "tollgate miss" "tollgate miss traced 1%"

``make bench`` runs each row for several seconds a round, every row after the other: on this VM
the whole machine's speed drifts by ±15 % within a minute (other tenants of the host), which
swamps a difference of a few per cent between two rows far apart in a round. Here the two rows
run in pairs of short slices (``--seconds`` each, in the order A B, B A, A B, ...: neither row is
always first), so the drift is nearly the same for both slices of a pair; each pair gives one
ratio B / A, and the median of the pairs' ratios (with its quartiles) is the figure. Both rows'
servers stay up for a start's pairs, so neither pays for the other's start-up.

Two processes of one build differ by a few per cent in speed: where their hash seeds and memory
layout land (an A/A of two fresh processes read 0.965 and 0.990 of the same variant in two
runs, with quartiles a tenth of that apart). So the pairs are split over ``--starts`` fresh
starts of both servers, and each start's median is printed too: a difference smaller than their
spread is not one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import load
from bench.servers import Server
from bench.targets import LOAD_CORE, Env, Target, select


@dataclass(frozen=True, slots=True)
class Slice:
    rps: float
    cpu_us: float  # the server's CPU per request


@dataclass(frozen=True, slots=True)
class Ratios:
    """B / A over the pairs: median and quartiles, of req/s and of CPU per request."""

    pairs: int
    rps: tuple[float, float, float]  # first quartile, median, third quartile
    cpu: tuple[float, float, float]


def order(pair: int) -> tuple[int, int]:
    """Pure: which row runs first in pair ``pair`` (0 = A): A B, then B A, alternately."""
    return (0, 1) if pair % 2 == 0 else (1, 0)


def split(pairs: int, starts: int) -> list[int]:
    """Pure: ``pairs`` shared out over ``starts`` (at least one pair each), the first ones
    taking what does not divide evenly."""
    starts = max(1, min(starts, pairs))
    q, r = divmod(pairs, starts)
    return [q + (1 if i < r else 0) for i in range(starts)]


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """Pure: first quartile, median, third quartile (the median alone for fewer than 2)."""
    if len(values) < 2:
        m = values[0] if values else float("nan")
        return m, m, m
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def ratios(pairs: list[tuple[Slice, Slice]]) -> Ratios:
    """Pure: the B / A ratios of each pair, summarised (a pair with no request is left out)."""
    ok = [(a, b) for a, b in pairs if a.rps > 0 and b.rps > 0]
    return Ratios(
        pairs=len(ok),
        rps=quartiles([b.rps / a.rps for a, b in ok]),
        cpu=quartiles([b.cpu_us / a.cpu_us for a, b in ok if a.cpu_us > 0]),
    )


def _slice(
    server: Server, url: str, seconds: int, conns: int, rate: float, headers: list[str]
) -> Slice:
    """One slice: wrk (saturating) or, with ``rate``, oha at that fixed rate (the server then
    idles between requests as in production, and CPU per request is not shaped by how full its
    event loop's batches get at saturation)."""
    before = server.cpu_seconds()
    if rate:
        f = load.fixed(LOAD_CORE, url, rate, seconds, conns)
        rps, requests = f.rps, f.rps * seconds
    else:
        s = load.wrk(LOAD_CORE, url, seconds, conns, headers)
        rps, requests = s.rps, s.requests
    cpu = server.cpu_seconds() - before
    return Slice(rps, cpu / requests * 1e6 if requests else 0.0)


def _target(name: str) -> Target:
    found = [t for t in select(name, variants=True, peers_="all") if t.name == name]
    if not found:
        raise SystemExit(f"unknown row {name!r} (python -m bench --help lists them)")
    return found[0]


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n")[0])
    ap.add_argument("a", help="the base row, e.g. 'tollgate miss'")
    ap.add_argument("b", help="the row compared with it, e.g. 'tollgate miss traced 1%%'")
    ap.add_argument("--pairs", type=int, default=15)
    ap.add_argument(
        "--starts",
        type=int,
        default=3,
        help="fresh processes of both rows, the pairs split over them",
    )
    ap.add_argument("--seconds", type=int, default=2, help="per slice (wrk's unit: whole s)")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--rate", type=float, default=0, help="fixed req/s by oha (0: wrk, saturating)")
    ap.add_argument(
        "--header",
        action="append",
        default=[],
        help="'Name: value' on every request (wrk only), e.g. 'X-Request-Id: a1'",
    )
    args = ap.parse_args()
    rows = [_target(args.a), _target(args.b)]
    env = Env(Path(tempfile.mkdtemp(prefix="tollgate-ab-")))
    pairs: list[tuple[Slice, Slice]] = []
    medians: list[float] = []
    try:
        for start, n in enumerate(split(args.pairs, args.starts)):
            servers = [t.start(env) for t in rows]
            urls = [t.url(env, s) for t, s in zip(rows, servers, strict=True)]
            for u in urls:
                load.wrk(LOAD_CORE, u, 2, args.conns)  # warm-up
            mine: list[tuple[Slice, Slice]] = []
            for p in range(n):
                got: dict[int, Slice] = {}
                for i in order(p):
                    got[i] = _slice(
                        servers[i], urls[i], args.seconds, args.conns, args.rate, args.header
                    )
                mine.append((got[0], got[1]))
                a, b = got[0], got[1]
                print(
                    f"start {start + 1} pair {len(pairs) + len(mine):2d}/{args.pairs}"
                    f"  A {a.rps:7,.0f} req/s {a.cpu_us:6.1f} us/req"
                    f"   B {b.rps:7,.0f} req/s {b.cpu_us:6.1f} us/req   B/A {b.rps / a.rps:5.3f}",
                    file=sys.stderr,
                    flush=True,
                )
            pairs += mine
            medians.append(ratios(mine).rps[1])
            for s in servers:
                env.stop_one(s)  # the next start's processes are fresh; helpers stay up
    finally:
        env.stop()
    r = ratios(pairs)
    print(
        f"{args.b!r} / {args.a!r}, {r.pairs} pairs of {args.seconds} s, "
        f"{f'oha at {args.rate:,.0f} req/s' if args.rate else 'wrk'} -c{args.conns}:\n"
        f"  req/s       median {r.rps[1]:.3f}  (quartiles {r.rps[0]:.3f}-{r.rps[2]:.3f})\n"
        f"  CPU/request median {r.cpu[1]:.3f}  (quartiles {r.cpu[0]:.3f}-{r.cpu[2]:.3f})\n"
        f"  req/s median of each start: {' '.join(f'{m:.3f}' for m in medians)}"
    )


if __name__ == "__main__":
    main()
