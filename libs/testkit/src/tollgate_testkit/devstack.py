"""``make run``: the whole Tollgate stack on this machine, on an embedded default.

Starts a local redis-server, two demo upstream APIs (end-of-day stock prices), the auth service,
the gateway (routes from ``deploy/samples/routes.yaml``) and the notifier (log sink), creates a demo
API key with a small credit balance and prints curl lines that work. Ctrl-C stops everything it
started, by PID. State and logs go to ``.run/``.

Everything listens on 127.0.0.1 unless ``--host`` (``TOLLGATE_DEV_HOST``) says otherwise: the banner
prints an admin token, which must not be handed to the network by default. Ports already taken (a
second ``make run``) stop it before it starts anything, naming the holder; ``--port-offset``
(``TOLLGATE_DEV_PORT_OFFSET``) moves every port. A demo upstream that dies is reported and the stack
stays up (a dead upstream is what the notifier demo shows); any other process dying stops it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from tollgate_testkit import devbanner
from tollgate_testkit.devbanner import Endpoints, connect_host
from tollgate_testkit.ports import holder, port_taken
from tollgate_testkit.procs import Proc, python_module

ROOT = Path(__file__).resolve().parents[4]
SAMPLE_ROUTES = ROOT / "deploy/samples/routes.yaml"
SAMPLE_UPSTREAMS = (9001, 9002)  # the endpoint ports written in SAMPLE_ROUTES
UPSTREAMS = ("upstream-a", "upstream-b")  # may die: the stack stays up without them


@dataclass(frozen=True)
class Ports:
    redis: int = 6390
    upstream_a: int = SAMPLE_UPSTREAMS[0]
    upstream_b: int = SAMPLE_UPSTREAMS[1]
    gateway: int = 8080
    auth: int = 8081
    notifier: int = 8082

    def shifted(self, offset: int) -> Ports:
        return Ports(**{k: v + offset for k, v in asdict(self).items()})

    def named(self) -> dict[str, int]:
        """Process name -> port, in start order."""
        return {k.replace("_", "-"): v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Options:
    host: str = "127.0.0.1"
    port_offset: int = 0
    run_dir: Path = ROOT / ".run"
    credits: int = 25


@dataclass
class Stack:
    run_dir: Path
    ports: Ports
    host: str = "127.0.0.1"
    procs: dict[str, Proc] = field(default_factory=dict)

    @property
    def connect(self) -> str:
        return connect_host(self.host)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        proc = Proc(argv, log=self.run_dir / f"{name}.log", env=env, cwd=ROOT)
        self.procs[name] = proc
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs.values()):
            proc.stop()


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def routes_yaml(sample: str, ports: Ports, connect: str) -> str:
    """The sample route file with its upstream endpoints moved to this stack's ports (pure)."""
    for old, new in zip(SAMPLE_UPSTREAMS, (ports.upstream_a, ports.upstream_b), strict=True):
        sample = sample.replace(f"http://127.0.0.1:{old}", f"http://{connect}:{new}")
    return sample


def busy_ports(host: str, ports: Ports) -> list[tuple[str, int, str]]:
    return [(n, p, holder(p)) for n, p in ports.named().items() if port_taken(host, p)]


def start_redis(stack: Stack) -> str:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = stack.ports.redis
    redis_dir = stack.run_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--port", str(port), "--bind", stack.host, "--save", ""]
    argv += ["--dir", str(redis_dir)]
    stack.start("redis", argv).wait_port(port, host=stack.connect)
    return f"redis://{stack.connect}:{port}/0"


def upstream_argv(port: int, name: str, host: str) -> list[str]:
    return python_module(
        "tollgate_testkit.upstream", "--port", str(port), "--name", name, "--host", host
    )


def start_upstreams(stack: Stack) -> None:
    for name, port in (("a", stack.ports.upstream_a), ("b", stack.ports.upstream_b)):
        argv = upstream_argv(port, name, stack.host)
        stack.start(f"upstream-{name}", argv).wait_port(port, host=stack.connect)


def start_service(stack: Stack, kind: str, port: int, env: dict[str, str]) -> str:
    """``python -m tollgate_<kind>`` on ``port`` of the stack's host; its URL once healthy."""
    prefix = f"TOLLGATE_{kind.upper()}_"
    full = {f"{prefix}HOST": stack.host, f"{prefix}PORT": str(port)}
    full.update({prefix + k: v for k, v in env.items()})
    url = f"http://{stack.connect}:{port}"
    stack.start(kind, python_module(f"tollgate_{kind}"), full).wait_http(f"{url}/healthz")
    return url


def start_auth(stack: Stack, redis_url: str, admin_token: str) -> str:
    env = {"REDIS_URL": redis_url, "ADMIN_TOKEN": admin_token, "DEV_MODE": "true"}
    return start_service(stack, "auth", stack.ports.auth, env)


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
    routes = stack.run_dir / "routes.yaml"
    routes.write_text(routes_yaml(SAMPLE_ROUTES.read_text(), stack.ports, stack.connect))
    env = {"REDIS_URL": redis_url, "ROUTES_FILE": str(routes), "AUTH_URL": auth_url}
    return start_service(stack, "gateway", stack.ports.gateway, env)


def start_notifier(stack: Stack, redis_url: str) -> None:
    env = {"REDIS_URL": redis_url, "CLAIM_IDLE_MS": "5000"}
    start_service(stack, "notifier", stack.ports.notifier, env)


def log_tail(proc: Proc, lines: int = 20) -> str:
    return "\n".join(proc.output().splitlines()[-lines:])


def report_death(stack: Stack, name: str) -> str:
    proc = stack.procs[name]
    code = proc.popen.returncode
    if name in UPSTREAMS:
        port = stack.ports.named()[name]
        argv = " ".join(upstream_argv(port, name[-1], stack.host))
        return devbanner.upstream_died(name, proc.pid, port, code, argv, stack.run_dir)
    return devbanner.service_died(name, proc.pid, code, proc.log_path, log_tail(proc))


def start_failure(stack: Stack, exc: Exception) -> str:
    """What to say when the last process started would not come up: the port it could not get
    (taken between our check and its bind), or its last log lines; never a traceback of ours."""
    why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if not stack.procs:
        return f"make run: start-up failed: {why}"
    name, proc = list(stack.procs.items())[-1]
    port = stack.ports.named().get(name)
    if port is not None and "address already in use" in proc.output():
        return devbanner.busy_message([(name, port, holder(port))], stack.host)
    if proc.alive():  # it runs, but what came next failed (the demo key, say)
        return f"make run: start-up failed after {name} started: {why} (log: {proc.log_path})"
    code = proc.popen.returncode
    return devbanner.service_died(name, proc.pid, code, proc.log_path, log_tail(proc))


def watch(stack: Stack, stopped: list[bool]) -> int:
    """Until Ctrl-C: report each process that dies; stop (1) when one the stack needs does."""
    reported: set[str] = set()
    while not stopped:
        for name, proc in stack.procs.items():
            if name not in reported and not proc.alive():
                reported.add(name)
                print(report_death(stack, name), file=sys.stderr, flush=True)
        if reported - set(UPSTREAMS):
            return 1
        time.sleep(0.2)
    return 0


def start_all(stack: Stack, credits: int) -> None:
    admin_token = "dev-" + secrets.token_urlsafe(18)
    redis_url = start_redis(stack)
    start_upstreams(stack)
    auth_url, key = "", None
    if has("tollgate_auth.__main__"):
        auth_url = start_auth(stack, redis_url, admin_token)
        key = create_demo_key(auth_url, admin_token, credits)
    gateway = start_gateway(stack, redis_url, auth_url)
    if has("tollgate_notifier.__main__"):
        start_notifier(stack, redis_url)
    pids = {name: proc.pid for name, proc in stack.procs.items()}
    demo = {"gateway": gateway, "key": key, "admin_token": admin_token, "pids": pids}
    (stack.run_dir / "demo.json").write_text(json.dumps(demo))
    ups = (stack.ports.upstream_a, stack.ports.upstream_b)
    ep = Endpoints(
        stack.host, stack.connect, stack.ports.gateway, stack.ports.auth, ups, stack.run_dir
    )
    print(devbanner.banner(ep, key, admin_token), flush=True)


def run(opts: Options) -> int:
    ports = Ports().shifted(opts.port_offset)
    try:
        busy = busy_ports(opts.host, ports)
    except OSError as exc:  # e.g. --host names an address this machine does not have
        print(f"make run: cannot listen on {opts.host}: {exc.strerror}", file=sys.stderr)
        return 2
    if busy:
        print(devbanner.busy_message(busy, opts.host), file=sys.stderr)
        return 2
    stack = Stack(run_dir=opts.run_dir, ports=ports, host=opts.host)
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    stopped: list[bool] = []

    def on_signal(signum: int, frame: object) -> None:
        stopped.append(True)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        start_all(stack, opts.credits)
        return watch(stack, stopped)
    except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
        print(start_failure(stack, exc), file=sys.stderr)
        return 1
    finally:
        stack.stop()


def parse(argv: list[str] | None = None) -> Options:
    env = os.environ
    ap = argparse.ArgumentParser(description="Run the Tollgate stack locally.")
    ap.add_argument("--credits", type=int, default=25, help="credits of the demo key")
    ap.add_argument(
        "--host",
        default=env.get("TOLLGATE_DEV_HOST", "127.0.0.1"),
        help="listen address of every process (default 127.0.0.1; env TOLLGATE_DEV_HOST)",
    )
    ap.add_argument(
        "--port-offset",
        type=int,  # argparse converts a string default too: a bad env value is a usage error
        default=env.get("TOLLGATE_DEV_PORT_OFFSET", "0"),
        help="added to every port: 6390, 9001, 9002, 8080-8082 (env TOLLGATE_DEV_PORT_OFFSET)",
    )
    ap.add_argument("--run-dir", type=Path, default=ROOT / ".run", help="logs and state")
    args = ap.parse_args(argv)
    ports = Ports().shifted(args.port_offset).named().values()
    if not all(0 < p < 65536 for p in ports):
        ap.error(f"--port-offset {args.port_offset} moves a port outside 1-65535")
    return Options(args.host, args.port_offset, args.run_dir, args.credits)


def main() -> None:
    sys.exit(run(parse()))


if __name__ == "__main__":
    main()
