"""``--scale race,conns,bodies``: how a miss's cost grows with the shape of the traffic (issue 14);
bench/scale.py runs these and renders their table like the routes and keys curves.

- race: a miss on a race route of 1, 2, 4 and 8 endpoints, each its own nginx on LOAD_CORE. The
  whole-path column counts those upstreams' CPU too: a race of k asks k of them.
- conns: a miss on /live under ``wrk -c`` 64 to 1,024 (CPU per request), then each count once at a
  fixed rate (oha, ``--rate`` or 2,000 req/s, open loop) for the p99 the goal is about: p99 at
  1,024 within 2x of 64's (reported, not asserted). wrk's own p99 is no measure of that: a closed
  loop of c connections on a saturated server waits c / throughput on average (Little's law),
  16x longer at 1,024 connections than at 64 whatever the server does. The gateway's per-client
  connection cap is off for it (every connection comes from 127.0.0.1).
- bodies: a miss on a route whose nginx serves static files of 1 KB to 1 MB. The 1 MB file is one
  byte over the gateway's default ``RESPONSE_BUFFER_BYTES`` (1 MiB), so it takes the streaming
  path (bodystream.py) while the others are read whole. The gateway's RSS after each case is kept
  on the row.

One gateway per curve, interleaved rounds over its cases, as the routes curve does.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench import load, servers
from bench.measurement import measure
from bench.report import Row
from bench.servers import Server
from bench.targets import LOAD_CORE, MISS, SERVER_CORE, Env, alone

RACE_WIDTHS = (1, 2, 4, 8)
CONNS = (64, 128, 256, 512, 1024)
CONNS_RATE = 2000.0  # the fixed rate: below a miss's throughput on the machines we measure
BODIES = (
    (1 << 10, "1 KB"),
    (10 << 10, "10 KB"),
    (100 << 10, "100 KB"),
    ((1 << 20) + 1, "1 MB streamed"),  # one byte over the default response buffer
)


def race_routes(ports: list[int]) -> str:
    """Routes /race1 .. /race<n>: /race<k> races the first k upstreams (cache off)."""
    docs = []
    for k in range(1, len(ports) + 1):
        endpoints = ", ".join(f'{{url: "http://127.0.0.1:{p}/eod"}}' for p in ports[:k])
        docs.append(f"""apiVersion: tollgate.dev/v1alpha1
kind: ApiBackend
metadata: {{name: race{k}, namespace: bench}}
spec:
  pathPrefix: /race{k}
  strategy: race
  endpoints: [{endpoints}]
  cache: {{ttlSeconds: 0}}
""")
    return "---\n".join(docs)


def bodies_routes(port: int) -> str:
    """One route, /files, to the static-file nginx (cache off; its bodies are not JSON)."""
    return f"""apiVersion: tollgate.dev/v1alpha1
kind: ApiBackend
metadata: {{name: files, namespace: bench}}
spec:
  pathPrefix: /files
  endpoints: [{{url: "http://127.0.0.1:{port}"}}]
  successWhen: http2xx
  cache: {{ttlSeconds: 0}}
"""


def file_path(size: int) -> str:
    """The request path of the file of ``size`` bytes."""
    return f"/api/v1/files/{size}.bin"


def files_upstream(work: Path, core: str) -> Server:
    """nginx serving /files/<size>.bin for every size of BODIES (sendfile, Content-Length)."""
    # Not under ``work`` (mkdtemp's 0700): nginx's worker drops to nobody, who must read them.
    root = Path(tempfile.mkdtemp(prefix="tollgate-bench-files-"))
    root.chmod(0o755)
    (root / "files").mkdir()
    for size, _ in BODIES:
        (root / "files" / f"{size}.bin").write_bytes(b"x" * size)
    return servers.start_nginx(
        work,
        "files-upstream",
        core,
        f"""
  server {{ listen 127.0.0.1:PORT; default_type application/octet-stream; sendfile on;
    location / {{ root {root}; }} }}""",
    )


def _gateway(env: Env, name: str, routes: str | None = None, **extra: str) -> Server:
    def start() -> Server:
        if routes is not None:
            path = env.work / f"{name}.yaml"
            path.write_text(routes)
            extra["ROUTES_FILE"] = str(path)
        up, up2 = env.upstream.port, env.upstream2.port
        return servers.gateway(env.work, SERVER_CORE, name, up, up2, env.redis_url, **extra)

    return env.once(name, start)


def scale_race(args: argparse.Namespace, env: Env) -> list[Row]:
    ups = [env.upstream, env.upstream2]
    for i in range(3, max(RACE_WIDTHS) + 1):
        name = f"upstream{i}"
        ups.append(env.once(name, lambda n=name: servers.upstream(env.work, LOAD_CORE, n)))
    gw = _gateway(env, "scale-race", race_routes([u.port for u in ups]))
    rows = {k: Row(f"race {k}") for k in RACE_WIDTHS}
    for _ in range(args.rounds):
        for k in RACE_WIDTHS:
            with alone(env, gw):
                url = f"http://127.0.0.1:{gw.port}/api/v1/race{k}/AAPL"
                rows[k].samples.append(measure(args, gw, url, ups[:k], rows[k].name))
    return [rows[k] for k in RACE_WIDTHS]


def scale_conns(args: argparse.Namespace, env: Env) -> list[Row]:
    gw = _gateway(env, "scale-conns", MAX_CONNECTIONS_PER_CLIENT="0")
    url = f"http://127.0.0.1:{gw.port}{MISS}"
    rows = {c: Row(f"conns {c:,}") for c in CONNS}
    for _ in range(args.rounds):
        for c in CONNS:
            with alone(env, gw):
                sample = measure(args, gw, url, [env.upstream], rows[c].name, conns=c)
                rows[c].samples.append(sample)
    rate = args.rate or CONNS_RATE
    for c in CONNS:
        with alone(env, gw):
            rows[c].fixed = load.fixed(LOAD_CORE, url, rate, args.seconds, conns=c)
    return [rows[c] for c in CONNS]


def scale_bodies(args: argparse.Namespace, env: Env) -> list[Row]:
    files = env.once("files-upstream", lambda: files_upstream(env.work, LOAD_CORE))
    gw = _gateway(env, "scale-bodies", bodies_routes(files.port))
    rows = {size: Row(f"body {label}") for size, label in BODIES}
    for _ in range(args.rounds):
        for size, _label in BODIES:
            with alone(env, gw):
                url = f"http://127.0.0.1:{gw.port}{file_path(size)}"
                rows[size].samples.append(measure(args, gw, url, [files], rows[size].name))
                rss = gw.rss_mb()
                row = rows[size]
                row.rss_mb = rss if row.rss_mb is None else max(row.rss_mb, rss)
    return [rows[size] for size, _ in BODIES]
