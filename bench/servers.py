"""The servers under test, each started by PID and pinned to a core with taskset."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

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


@dataclass
class Server:
    name: str
    proc: Proc
    port: int

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv]


def nginx_bin() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def start_nginx(work: Path, name: str, core: str, body: str) -> Server:
    port = free_port()
    d = work / name
    (d / "logs").mkdir(parents=True, exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text(f"""
daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log error;
events {{ worker_connections 4096; }}
http {{
  access_log off; keepalive_requests 1000000;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp;
  fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  {body.replace("PORT", str(port))}
}}
""")
    proc = Proc(pinned(core, [nginx_bin(), "-p", str(d), "-c", str(conf)]), log=d / "out.log")
    proc.wait_port(port)
    return Server(name, proc, port)


def upstream(work: Path, core: str) -> Server:
    payload = json.dumps(EOD).replace("'", "\\'")
    return start_nginx(
        work,
        "upstream",
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
    binary = str(Path(sys.executable).parent / "traefik")
    proc = Proc(
        pinned(core, [binary, f"--configFile={d / 'traefik.yaml'}"]),
        log=d / "out.log",
        env={"GOMAXPROCS": "1"},
    )
    proc.wait_port(port)
    _wait_route(f"http://127.0.0.1:{port}/api/v1/eod/AAPL", proc)
    return Server("traefik", proc, port)


def seed(work: Path, core: str, up: int) -> Server:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.seed_proxy:app",
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
    proc = Proc(
        pinned(core, argv), log=work / "seed.log", env={"SEED_UPSTREAMS": f"http://127.0.0.1:{up}"}
    )
    proc.wait_http(f"http://127.0.0.1:{port}/api/v1/eod/AAPL")
    return Server("seed", proc, port)


def routes_file(work: Path, up: int) -> Path:
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
""")
    return p


def redis(work: Path, core: str) -> Server:
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = Proc(
        pinned(
            core,
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(work)],
        ),
        log=work / "redis.log",
    )
    proc.wait_port(port)
    return Server("redis", proc, port)


def auth(work: Path, core: str, redis_url: str) -> Server:
    port = free_port()
    env = {
        "TOLLGATE_AUTH_PORT": str(port),
        "TOLLGATE_AUTH_HOST": "127.0.0.1",
        "TOLLGATE_AUTH_REDIS_URL": redis_url,
        "TOLLGATE_AUTH_ADMIN_TOKEN": ADMIN,
    }
    proc = Proc(
        pinned(core, [sys.executable, "-m", "tollgate_auth"]), log=work / "auth.log", env=env
    )
    proc.wait_http(f"http://127.0.0.1:{port}/healthz")
    return Server("auth", proc, port)


ADMIN = "bench-admin-token-0123456789"


def bench_key(auth_url: str) -> str:
    h = {"Authorization": f"Bearer {ADMIN}"}
    r = httpx.post(
        f"{auth_url}/v1/admin/keys", json={"credits": 10**12, "name": "bench"}, headers=h
    )
    r.raise_for_status()
    return str(r.json()["key"])


def gateway(
    work: Path, core: str, name: str, up: int, redis_url: str, auth_url: str = "", **extra: str
) -> Server:
    port = free_port()
    env = {
        "TOLLGATE_GATEWAY_PORT": str(port),
        "TOLLGATE_GATEWAY_HOST": "127.0.0.1",
        "TOLLGATE_GATEWAY_REDIS_URL": redis_url,
        "TOLLGATE_GATEWAY_AUTH_URL": auth_url,
        "TOLLGATE_GATEWAY_ROUTES_FILE": str(routes_file(work, up)),
        "TOLLGATE_GATEWAY_LOG_LEVEL": "WARNING",
        **{f"TOLLGATE_GATEWAY_{k}": v for k, v in extra.items()},
    }
    proc = Proc(
        pinned(core, [sys.executable, "-m", "tollgate_gateway"]), log=work / f"{name}.log", env=env
    )
    proc.wait_http(f"http://127.0.0.1:{port}/healthz")
    return Server(name, proc, port)


def _wait_route(url: str, proc: Proc) -> None:
    import time

    for _ in range(100):
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} never answered 200:\n{proc.output()[-2000:]}")
