"""``python -m bench --scale routes,keys,race,conns,bodies``: how a request's cost grows with the
work, in one run (race, conns and bodies are in bench/shapes.py).

- routes: a miss on /live (cache off) with 1 to 10,000 routes in the gateway's table, published in
  Redis as the operator does. Half of the others are siblings under the measured prefix
  (``/live/x8``: longer, never matching), so the longest-prefix match has company where it
  looks. One gateway per size (each on its own Redis database), interleaved rounds.
- keys: a metered miss (the ledger in the gateway, ``AUTH_MODE=redis``) with 1 to 1,000,000 keys
  in Redis. The others are key records of the same shape written straight into Redis (the admin
  API makes one a round trip). One Redis grows, so the sizes run one after the other, smallest
  first; CPU per request, the column to read, barely moves with drift on the machine.

Same method as the main bench (bench/__main__.py): the gateway alone on SERVER_CORE, wrk,
upstream and Redis on LOAD_CORE, medians. The table gives each size's CPU per request (gateway,
and the whole path with its helpers) over the smallest size's: the goal for routes and keys is
within 1.1x.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Callable, Iterator

from redis import Redis

from bench import servers, shapes
from bench.measurement import measure
from bench.report import Fixed, Row
from bench.servers import Server
from bench.targets import KEY, MISS, SERVER_CORE, Env, alone
from tollgate_common.contracts.routes import (
    TABLE_KEY,
    ApiBackendSpec,
    CacheSpec,
    Endpoint,
    Route,
    RouteTable,
)
from tollgate_common.ledger.layout import record_key

ROUTES = (1, 10, 100, 1_000, 10_000)
KEYS = (1, 1_000, 10_000, 100_000, 1_000_000)
FILL_BATCH = 5_000


def route_table(n: int, up: int) -> str:
    """A route table of ``n`` routes as the operator publishes it (JSON in Redis): /live (the
    measured one, cache off) and n - 1 others, alternately elsewhere (``/r7``) and under /live
    (``/live/x8``, never matched by /live/AAPL)."""
    prefixes = ["/live"] + [f"/live/x{i}" if i % 2 == 0 else f"/r{i}" for i in range(1, n)]
    routes = [
        Route(
            name=f"bench/r{i}",
            spec=ApiBackendSpec(
                path_prefix=prefix,
                endpoints=[Endpoint(url=f"http://127.0.0.1:{up}/eod")],
                cache=CacheSpec(ttl_seconds=0),
            ),
        )
        for i, prefix in enumerate(prefixes)
    ]
    return RouteTable(version=1, routes=routes).dumps()


def key_records(start: int, stop: int, plan: str) -> Iterator[tuple[str, dict[str, str | int]]]:
    """Key records for keys ``start`` .. ``stop`` - 1, shaped like the auth service's, each under
    a random hash (of a key nobody holds): (Redis key, fields)."""
    for i in range(start, stop):
        key_id = f"s{i:07d}"
        fields: dict[str, str | int] = {
            "id": key_id,
            "name": "scale",
            "plan": plan,
            "credits": 10**6,
            "revoked": 0,
            "expires_at": 0,
            "created_at": 0,
        }
        yield record_key(key_id, secrets.token_hex(32)), fields


def ratio_rows(rows: list[Row]) -> list[tuple[str, float | None, float | None]]:
    """(name, CPU over the first row's, path CPU over the first row's): the curve's shape."""
    base, base_path = rows[0].cpu_us, rows[0].path_cpu_us
    out = []
    for r in rows:
        cpu = r.cpu_us / base if r.cpu_us is not None and base else None
        path = r.path_cpu_us / base_path if r.path_cpu_us is not None and base_path else None
        out.append((r.name, cpu, path))
    return out


def render(title: str, rows: list[Row]) -> str:
    head = ["case", "req/s", "p99 ms", "CPU us/req", "x smallest", "path CPU us/req", "x smallest"]
    fixed = next((r.fixed for r in rows if r.fixed is not None), None)
    if fixed is not None:
        head.append(f"p99 ms @ {fixed.rate:,.0f}/s")
    lines = [head]
    for r, (_, cpu_x, path_x) in zip(rows, ratio_rows(rows), strict=True):
        line = [
            r.name,
            f"{r.rps:,.0f}",
            f"{r.p99:.2f}",
            "-" if r.cpu_us is None else f"{r.cpu_us:.1f}",
            "-" if cpu_x is None else f"{cpu_x:.2f}",
            "-" if r.path_cpu_us is None else f"{r.path_cpu_us:.1f}",
            "-" if path_x is None else f"{path_x:.2f}",
        ]
        if fixed is not None:
            line.append("-" if r.fixed is None else _fixed_cell(r.fixed))
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = [title]
    for j, line in enumerate(lines):
        cells = zip(line, widths, strict=True)
        out.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))
        )
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def scale_routes(args: argparse.Namespace, env: Env) -> list[Row]:
    # One Redis database per size: each gateway follows its own table, as in production (a
    # routes file goes through the YAML parser, about 4 ms a route: fine for a few, not 10,000).
    gateways: dict[int, Server] = {}
    for db, n in enumerate(ROUTES, 1):
        url = f"redis://127.0.0.1:{env.redis.port}/{db}"
        with Redis.from_url(url) as rd:
            rd.set(TABLE_KEY, route_table(n, env.upstream.port))
        gateways[n] = env.once(f"scale-routes-{n}", _routes_gateway(env, n, url))
    rows = {n: Row(f"routes {n:,}") for n in ROUTES}
    for _ in range(args.rounds):
        for n, gw in gateways.items():
            with alone(env, gw):
                url = f"http://127.0.0.1:{gw.port}{MISS}"
                rows[n].samples.append(measure(args, gw, url, [env.redis], rows[n].name))
    return [rows[n] for n in ROUTES]


def _routes_gateway(env: Env, n: int, redis_url: str) -> Callable[[], Server]:
    def start() -> Server:
        up = env.upstream.port
        name = f"scale-routes-{n}"
        # ROUTES_FILE empty: the gateway follows the table in Redis.
        return servers.gateway(env.work, SERVER_CORE, name, up, up, redis_url, ROUTES_FILE="")

    return start


def scale_keys(args: argparse.Namespace, env: Env) -> list[Row]:
    key = env.api_key  # the measured key, on the bench plan (counted, never limited)
    gw = env.once(
        "scale-ledger",
        lambda: servers.gateway(
            env.work,
            SERVER_CORE,
            "scale-ledger",
            env.upstream.port,
            env.upstream2.port,
            env.redis_url,
            AUTH_MODE="redis",
        ),
    )
    url = f"http://127.0.0.1:{gw.port}{MISS}{KEY.format(key=key)}"
    rows = []
    have = 1
    with Redis.from_url(env.redis_url) as rd:
        for n in KEYS:
            t0 = time.monotonic()
            _fill(rd, have, n)
            if n > have:
                print(f"keys: {n:,} in Redis ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
            have = max(have, n)
            row = Row(f"keys {n:,}")
            with alone(env, gw):
                for _ in range(args.rounds):
                    row.samples.append(measure(args, gw, url, [env.redis], row.name))
            rows.append(row)
    return rows


def _fill(rd: Redis, have: int, want: int) -> None:
    pipe = rd.pipeline(transaction=False)
    for i, (k, fields) in enumerate(key_records(have, want, "bench"), 1):
        pipe.hset(k, items=[x for kv in fields.items() for x in kv])
        if i % FILL_BATCH == 0:
            pipe.execute()
    pipe.execute()


SCALES = {
    "routes": scale_routes,
    "keys": scale_keys,
    "race": shapes.scale_race,
    "conns": shapes.scale_conns,
    "bodies": shapes.scale_bodies,
}


def run(args: argparse.Namespace, env: Env) -> str:
    """Every asked-for curve, rendered."""
    wanted = [s.strip() for s in args.scale.split(",") if s.strip()]
    unknown = set(wanted) - set(SCALES)
    if unknown:
        raise SystemExit(f"unknown --scale {sorted(unknown)}; known: {', '.join(SCALES)}")
    out = []
    for what in wanted:
        rows = SCALES[what](args, env)
        out.append(render(f"\n--scale {what}", rows))
        out.extend(summary(what, rows))
    return "\n".join(out)


def _fixed_cell(f: Fixed) -> str:
    """The fixed-rate p99, with the rate reached when it fell short and the errors if any."""
    cell = f"{f.p99_ms:.2f}"
    if f.rps < 0.95 * f.rate:
        cell += f" (held {f.rps:,.0f}/s)"
    if f.errors:
        cell += f" ({f.errors} errors)"
    return cell


def summary(what: str, rows: list[Row]) -> list[str]:
    """The line under a curve's table: its goal (routes, keys: CPU within 1.1x; conns: p99
    within 2x), or the gateway's RSS per body size."""
    if what in ("routes", "keys"):
        worst = max((x for _, x, _ in ratio_rows(rows) if x is not None), default=None)
        if worst is not None:
            return [f"largest / smallest CPU per request: {worst:.2f} (goal <= 1.10)"]
    elif what == "conns" and rows[0].fixed is not None and rows[-1].fixed is not None:
        first, last = rows[0].fixed, rows[-1].fixed
        if first.p99_ms:
            return [
                f"p99 at {first.rate:,.0f} req/s, {rows[-1].name} / {rows[0].name}: "
                f"{last.p99_ms / first.p99_ms:.2f} (goal <= 2)"
            ]
    elif what == "bodies":
        rss = ", ".join(f"{r.name.removeprefix('body ')} {r.rss_mb:.0f}" for r in rows if r.rss_mb)
        return [f"gateway RSS (MB) after: {rss}"]
    return []
