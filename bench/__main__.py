"""``make bench``: direct, nginx, Traefik, the seed design and Tollgate, side by side.

Two cores: the server under test runs on core 1 and has it to itself (every other server under
test is paused with SIGSTOP meanwhile; Traefik with GOMAXPROCS=1, nginx and each Python server
with one worker); the load generator, the upstream (nginx, one worker), Redis and the auth service
share core 0. Rounds are interleaved (A B C ... A B C ...), each a warm-up then a measured wrk run
(-t1, 64 connections), and the median is reported, so drift on the machine hits every target
alike. A fixed-rate pass (oha, default 2,000 req/s) measures p99 at a load every peer holds; RSS
is read from /proc after the load. Every process is started by PID and stopped by PID at the end,
on Ctrl-C too. Only loopback.

Rows are listed in bench/targets.py; ``--variants`` adds the same gateway served differently
(granian, stock uvicorn: bench/variants.py). ``python -m bench.profile`` runs py-spy on one row.
The peers (Envoy, Traefik with forwardAuth + rateLimit, KrakenD: bench/peers.py) are chosen with
``--peers``; one that is not installed (``bash hack/peers.sh``), fails to start or fails its smoke
check (no key refused, over the limit 429) is skipped with a line saying why.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from bench import load, peers, scale, servers
from bench.report import Row, as_json, fixed_rate_for, table
from bench.servers import Server
from bench.targets import FAMILIES, LOAD_CORE, SERVER_CORE, Env, Target, alone, names, select

RESULTS = Path(__file__).parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--seconds", type=float, default=5.0, help="one measured run (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0, help="before each run (default 1)")
    ap.add_argument("--conns", type=int, default=64, help="wrk connections (default 64)")
    ap.add_argument(
        "--rate", type=float, default=2000.0, help="fixed-rate pass, req/s (0 skips it)"
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s")
    rows = ", ".join(names()).replace("%", "%%")  # argparse formats help with %
    ap.add_argument("--only", default="", help=f"comma-separated rows of: {rows}")
    ap.add_argument(
        "--variants", action="store_true", help="also the variant rows (granian, stock uvicorn)"
    )
    ap.add_argument(
        "--scale",
        default="",
        help="instead of the rows: cost as the work grows, for some of: routes, keys, race, conns, "
        "bodies",
    )
    ap.add_argument(
        "--peers",
        default="all",
        help=f"peer rows: all (default), none, or some of {', '.join(FAMILIES)}",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 1, 2.0
    return args


def main() -> None:
    args = parse_args()
    targets = select(args.only, args.variants, args.peers)
    missing = servers.missing_tools(granian=any("granian" in t.name for t in targets))
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)}; `make bench` installs them")
    env = Env(Path(tempfile.mkdtemp(prefix="tollgate-bench-")))
    signal.signal(signal.SIGTERM, _interrupt)  # a supervisor's stop: clean up like Ctrl-C
    signal.signal(signal.SIGINT, _interrupt)  # even when started with SIGINT ignored (`&`)
    skipped: dict[str, str] = {}
    if args.scale:
        try:
            print(scale.run(args, env))
        except KeyboardInterrupt:
            raise SystemExit(130) from None
        finally:
            env.stop()
        return
    try:
        started = start(env, targets, skipped)
        targets = [t for t in targets if t.name in started]
        rows = run(args, env, targets, started)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every server", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        env.stop()
    print()
    print(table(rows, args.rate))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    print(
        f"\nwrk -t1 -c{args.conns}, {args.rounds} interleaved rounds of {args.seconds:g} s "
        f"(after {args.warmup:g} s warm-up), medians; p99 at a fixed {args.rate:.0f} req/s by "
        f"{load.fixed_loader()} ({args.seconds:g} s); the server under test alone on core "
        f"{SERVER_CORE}, load + upstream + Redis + auth + the peers' helpers on core "
        f"{LOAD_CORE}; RSS: the largest process of each server (its worker); path CPU: the "
        "server plus the services its path calls (auth, ratelimit, Redis, forwardAuth), not the "
        "upstream"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / time.strftime("bench-%Y%m%d-%H%M%S.json")
    out.write_text(as_json(rows, {**meta(args), "skipped": skipped}))
    print(f"results: {out}")


def start(env: Env, targets: list[Target], skipped: dict[str, str]) -> dict[str, Server]:
    """Start every row's server; a peer row that cannot run here goes to ``skipped`` with why:
    its binary missing, its start failing, or its smoke check (the work it is named for)."""
    started: dict[str, Server] = {}
    for t in targets:
        why = peers.missing(t.peer) if t.peer else None
        if why is None:
            try:
                started[t.name] = t.start(env)
                if t.smoke is not None:
                    t.smoke(env, started[t.name])
            except (OSError, RuntimeError, TimeoutError, httpx.HTTPError) as exc:
                if not t.peer:
                    raise
                started.pop(t.name, None)
                why = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        if why is not None:
            skipped[t.name] = why
            print(f"skip {t.name}: {why}", file=sys.stderr, flush=True)
    return started


def run(
    args: argparse.Namespace, env: Env, targets: list[Target], started: dict[str, Server]
) -> list[Row]:
    rows = {t.name: Row(t.name) for t in targets}
    urls = {t.name: t.url(env, started[t.name]) for t in targets}
    for rnd in range(args.rounds):
        for t in targets:
            with alone(env, started[t.name]):
                with contextlib.suppress(ValueError):  # a warm-up may finish no request at all
                    load.wrk(LOAD_CORE, urls[t.name], args.warmup, args.conns, t.headers)
                helpers = t.helpers(env)
                cpu = started[t.name].cpu_seconds()
                path_cpu = sum(h.cpu_seconds() for h in helpers)
                sample = load.wrk(LOAD_CORE, urls[t.name], args.seconds, args.conns, t.headers)
                if sample.requests:
                    server_cpu = started[t.name].cpu_seconds() - cpu
                    path_cpu = sum(h.cpu_seconds() for h in helpers) - path_cpu + server_cpu
                    sample.cpu_us = server_cpu / sample.requests * 1e6
                    sample.path_cpu_us = path_cpu / sample.requests * 1e6
            rows[t.name].samples.append(sample)
            print(
                f"round {rnd + 1}/{args.rounds}  {t.name:26s} {sample.rps:>9,.0f} req/s  "
                f"p99 {sample.p99_ms:6.2f} ms  CPU {sample.cpu_us or 0:5.1f} us/req  "
                f"path {sample.path_cpu_us or 0:5.1f} us/req  errors {sample.errors}",
                file=sys.stderr,
                flush=True,
            )
    for t in targets:
        row, server = rows[t.name], started[t.name]
        rate = fixed_rate_for(row.rps, args.rate)
        with alone(env, server):
            if rate > 0:
                row.fixed = load.fixed(
                    LOAD_CORE, urls[t.name], rate, args.seconds, headers=t.headers
                )
            row.rss_mb = server.rss_mb()
        if row.fixed is None:
            continue
        print(
            f"fixed rate    {t.name:26s} p99 {row.fixed.p99_ms:6.2f} ms at {rate:.0f} req/s",
            file=sys.stderr,
            flush=True,
        )
    return [rows[t.name] for t in targets]


def meta(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": vars(args),
        "fixed_loader": load.fixed_loader(),
        "load_core": LOAD_CORE,
        "server_core": SERVER_CORE,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def _interrupt(_sig: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
