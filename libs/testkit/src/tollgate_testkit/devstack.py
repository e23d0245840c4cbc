"""``make run``: the whole Tollgate stack on this machine, on an embedded default.

Starts a local redis-server, two demo upstream APIs (end-of-day stock prices), the auth service,
the gateway (routes from ``deploy/samples/routes.yaml``) and the notifier (log sink), creates a demo
API key with a small credit balance and prints curl lines that work. Ctrl-C stops everything it
started, by PID. State and logs go to ``.run/``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import secrets
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tollgate_testkit.procs import Proc, python_module

ROOT = Path(__file__).resolve().parents[4]


@dataclass
class Ports:
    redis: int = 6390
    upstream_a: int = 9001
    upstream_b: int = 9002
    gateway: int = 8080
    auth: int = 8081
    notifier: int = 8082


@dataclass
class Stack:
    run_dir: Path
    ports: Ports
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        proc = Proc(argv, log=self.run_dir / f"{name}.log", env=env, cwd=ROOT)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def start_redis(stack: Stack) -> str:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = stack.ports.redis
    redis_dir = stack.run_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--dir", str(redis_dir)]
    stack.start("redis", argv).wait_port(port)
    return f"redis://127.0.0.1:{port}/0"


def start_upstreams(stack: Stack) -> None:
    for name, port in (("a", stack.ports.upstream_a), ("b", stack.ports.upstream_b)):
        argv = python_module("tollgate_testkit.upstream", "--port", str(port), "--name", name)
        stack.start(f"upstream-{name}", argv).wait_port(port)


def start_auth(stack: Stack, redis_url: str, admin_token: str) -> str:
    port = stack.ports.auth
    env = {
        "TOLLGATE_AUTH_PORT": str(port),
        "TOLLGATE_AUTH_REDIS_URL": redis_url,
        "TOLLGATE_AUTH_ADMIN_TOKEN": admin_token,
        "TOLLGATE_AUTH_DEV_MODE": "true",
    }
    stack.start("auth", python_module("tollgate_auth"), env).wait_http(
        f"http://127.0.0.1:{port}/healthz"
    )
    return f"http://127.0.0.1:{port}"


def create_demo_key(auth_url: str, admin_token: str, credits: int) -> str:
    headers = {"Authorization": f"Bearer {admin_token}"}
    plan = {"name": "demo", "rate": 2.0, "burst": 5}
    httpx.put(f"{auth_url}/v1/admin/plans/demo", json=plan, headers=headers, timeout=5)
    r = httpx.post(
        f"{auth_url}/v1/admin/keys",
        json={"name": "demo", "credits": credits, "plan": "demo"},
        headers=headers,
        timeout=5,
    )
    r.raise_for_status()
    return str(r.json()["key"])


def start_gateway(stack: Stack, redis_url: str, auth_url: str) -> str:
    port = stack.ports.gateway
    env = {
        "TOLLGATE_GATEWAY_PORT": str(port),
        "TOLLGATE_GATEWAY_REDIS_URL": redis_url,
        "TOLLGATE_GATEWAY_ROUTES_FILE": str(ROOT / "deploy/samples/routes.yaml"),
        "TOLLGATE_GATEWAY_AUTH_URL": auth_url,
    }
    stack.start("gateway", python_module("tollgate_gateway"), env).wait_http(
        f"http://127.0.0.1:{port}/healthz"
    )
    return f"http://127.0.0.1:{port}"


def start_notifier(stack: Stack, redis_url: str) -> None:
    port = stack.ports.notifier
    env = {
        "TOLLGATE_NOTIFIER_PORT": str(port),
        "TOLLGATE_NOTIFIER_REDIS_URL": redis_url,
        "TOLLGATE_NOTIFIER_CLAIM_IDLE_MS": "5000",
    }
    stack.start("notifier", python_module("tollgate_notifier"), env).wait_http(
        f"http://127.0.0.1:{port}/healthz"
    )


def banner(gateway: str, key: str | None, admin_token: str, stack: Stack) -> str:
    q = f"?api_key={key}" if key else ""
    lines = [
        "",
        "Tollgate is running (Ctrl-C stops everything).",
        "",
        "  Try it:",
        f"    curl -i '{gateway}/api/v1/eod/AAPL{q}'",
        "  (run it twice: the second answer says X-Cache: HIT)",
        "",
    ]
    if key:
        lines += [
            f"  Demo key (small credit balance; spend it to see 402, hammer it to see 429): {key}",
            f"  Admin token (dev mode only): {admin_token}",
            f"    TOLLGATE_URL=http://127.0.0.1:{stack.ports.auth} TOLLGATE_ADMIN_TOKEN="
            f"{admin_token} uv run tollgate keys list",
            "",
        ]
    a, b = stack.ports.upstream_a, stack.ports.upstream_b
    fail = """-d '{"mode":"error500"}'"""
    lines += [
        "  Break both demo upstreams and the notifier reports it once (.run/notifier.log):",
        f"    for p in {a} {b}; do curl -s -XPOST localhost:$p/_control {fail}; done",
        f"    curl -s '{gateway}/api/v1/eod-live/X{q}'   # 502: every upstream failed",
        "  Heal them (mode ok) and the next good request sends the resolved message.",
        f"  Logs: {stack.run_dir}/",
        "",
    ]
    return "\n".join(lines)


def run(credits: int) -> int:
    stack = Stack(run_dir=ROOT / ".run", ports=Ports())
    stack.run_dir.mkdir(exist_ok=True)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    admin_token = "dev-" + secrets.token_urlsafe(18)
    try:
        redis_url = start_redis(stack)
        start_upstreams(stack)
        auth_url, key = "", None
        if has("tollgate_auth.__main__"):
            auth_url = start_auth(stack, redis_url, admin_token)
            key = create_demo_key(auth_url, admin_token, credits)
        gateway = start_gateway(stack, redis_url, auth_url)
        if has("tollgate_notifier.__main__"):
            start_notifier(stack, redis_url)
        (stack.run_dir / "demo.json").write_text(
            json.dumps({"gateway": gateway, "key": key, "admin_token": admin_token})
        )
        print(banner(gateway, key, admin_token, stack), flush=True)
        while not stop and all(p.alive() for p in stack.procs):
            time.sleep(0.2)
        dead = [p for p in stack.procs if not p.alive()]
        for p in dead:
            print(f"{p.argv[0]} exited; see {p.log_path}", file=sys.stderr)
        return 1 if dead and not stop else 0
    finally:
        stack.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description="Run the Tollgate stack locally.")
    ap.add_argument("--credits", type=int, default=25, help="credits of the demo key")
    sys.exit(run(ap.parse_args().credits))


if __name__ == "__main__":
    main()
