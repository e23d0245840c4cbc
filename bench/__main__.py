"""``make bench``: direct, nginx, Traefik, the seed design and Tollgate, side by side.

Layout on two cores: the server under test runs alone on core 1 (Traefik with GOMAXPROCS=1, nginx
and each Python server with one worker); the load generator, the upstream (nginx, one worker),
Redis and the auth service share core 0. Rounds are interleaved (A B C ... A B C ...) and the
median is reported, so drift on the machine hits every target alike. A fixed-rate pass measures
p99 at a rate every target can hold (default 2,000 req/s).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from bench import servers
from bench.report import Row, parse_wrk, table

LOAD_CORE, SERVER_CORE = "0", "1"


def wrk(url: str, seconds: float, conns: int) -> str:
    cmd = [
        "taskset",
        "-c",
        LOAD_CORE,
        "wrk",
        "-t1",
        f"-c{conns}",
        f"-d{max(int(seconds), 1)}s",
        "--latency",
        url,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout


def fixed(url: str, rate: float, seconds: float) -> tuple[float, float]:
    cmd = [
        "taskset",
        "-c",
        LOAD_CORE,
        sys.executable,
        "-m",
        "bench.fixedrate",
        url,
        str(rate),
        str(seconds),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 30)
    _sent, ok, _p50, p99 = out.stdout.split()
    return float(p99), float(ok) / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--rate", type=float, default=2000.0, help="fixed-rate pass, req/s")
    ap.add_argument("--quick", action="store_true", help="1 round of 2 s (smoke run)")
    ap.add_argument("--only", default="", help="comma-separated target names")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 2.0

    work = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    started: list[servers.Server] = []

    def keep(s: servers.Server) -> servers.Server:
        started.append(s)
        return s

    try:
        up = keep(servers.upstream(work, LOAD_CORE))
        rd = keep(servers.redis(work, LOAD_CORE))
        redis_url = f"redis://127.0.0.1:{rd.port}/0"
        au = keep(servers.auth(work, LOAD_CORE, redis_url))
        key = servers.bench_key(f"http://127.0.0.1:{au.port}")
        ng = keep(servers.nginx_proxy(work, SERVER_CORE, up.port))
        tr = keep(servers.traefik(work, SERVER_CORE, up.port))
        sd = keep(servers.seed(work, SERVER_CORE, up.port))
        gw = keep(servers.gateway(work, SERVER_CORE, "tollgate", up.port, redis_url))
        ga = keep(
            servers.gateway(
                work,
                SERVER_CORE,
                "tollgate-auth",
                up.port,
                redis_url,
                f"http://127.0.0.1:{au.port}",
            )
        )
        gl = keep(
            servers.gateway(
                work, SERVER_CORE, "tollgate-ledger", up.port, redis_url, AUTH_MODE="redis"
            )
        )

        def u(s: servers.Server, path: str) -> str:
            return f"http://127.0.0.1:{s.port}{path}"

        targets: list[tuple[str, str, servers.Server]] = [
            ("direct", u(up, "/eod/AAPL"), up),
            ("nginx", u(ng, "/api/v1/eod/AAPL"), ng),
            ("traefik", u(tr, "/api/v1/eod/AAPL"), tr),
            ("seed fastapi+httpx", u(sd, "/api/v1/eod/AAPL"), sd),
            ("tollgate miss", u(gw, "/api/v1/live/AAPL"), gw),
            ("tollgate hit", u(gw, "/api/v1/eod/AAPL"), gw),
            ("tollgate+auth miss", u(ga, f"/api/v1/live/AAPL?api_key={key}"), ga),
            ("tollgate+auth hit", u(ga, f"/api/v1/eod/AAPL?api_key={key}"), ga),
            ("tollgate+ledger miss", u(gl, f"/api/v1/live/AAPL?api_key={key}"), gl),
            ("tollgate+ledger hit", u(gl, f"/api/v1/eod/AAPL?api_key={key}"), gl),
        ]
        if args.only:
            wanted = set(args.only.split(","))
            targets = [t for t in targets if t[0] in wanted or t[0] in ("direct", "traefik")]
        rows = {name: Row(name) for name, _, _ in targets}
        for rnd in range(args.rounds):
            for name, url, _ in targets:
                wrk(url, 1, args.conns)  # warm-up: pools, caches, JIT-less but still
                sample = parse_wrk(wrk(url, args.seconds, args.conns))
                rows[name].samples.append(sample)
                print(
                    f"round {rnd + 1}/{args.rounds} {name:22s} {sample.rps:>9,.0f} req/s",
                    file=sys.stderr,
                    flush=True,
                )
        for name, url, server in targets:
            rate = args.rate if not name.startswith("seed") else min(args.rate, 400.0)
            rows[name].fixed_p99_ms, rows[name].fixed_rps = fixed(url, rate, args.seconds)
            rows[name].rss_mb = server.rss_mb()
        result = [rows[n] for n, _, _ in targets]
        print()
        print(table(result))
        print(
            f"\nfixed-rate pass: {args.rate:.0f} req/s (seed: at most 400), "
            f"{args.seconds:.0f} s; wrk -t1 -c{args.conns}, {args.rounds} interleaved "
            f"rounds of {args.seconds:.0f} s, medians; server on core {SERVER_CORE}, "
            f"load+upstream+redis+auth on core {LOAD_CORE}"
        )
        out = Path(__file__).parent / "results" / time.strftime("bench-%Y%m%d-%H%M%S.json")
        out.write_text(
            json.dumps(
                [asdict(r) | {"rps": r.rps, "p50": r.p50, "p99": r.p99} for r in result], indent=2
            )
        )
        print(f"results: {out}")
    finally:
        for s in reversed(started):
            s.proc.stop()


if __name__ == "__main__":
    main()
