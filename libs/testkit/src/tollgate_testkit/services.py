"""Tollgate's own services as real processes, for black-box tests (``python -m tollgate_*``)."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path

from tollgate_testkit.ports import free_port
from tollgate_testkit.procs import Proc, python_module

ADMIN_TOKEN = "test-admin-token-0123456789"


@dataclass
class Service:
    name: str
    proc: Proc
    port: int
    kind: str = ""
    workdir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    health: str = "/healthz"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.stop()

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop with ``sig`` (SIGKILL: a crash), then start the same service on the same port."""
        assert self.workdir is not None, "started without start_service"
        self.proc.kill(sig)
        self.proc.stop()  # reaps it and closes its log
        fresh = start_service(
            self.kind, self.workdir, self.env, name=self.name, health=self.health, port=self.port
        )
        self.proc = fresh.proc


def start_service(
    kind: str,
    workdir: Path,
    env: dict[str, str],
    *,
    name: str | None = None,
    health: str = "/healthz",
    process_env: dict[str, str] | None = None,
    port: int | None = None,
) -> Service:
    """Start ``python -m tollgate_<kind>`` with TOLLGATE_<KIND>_* settings and wait for health;
    ``process_env`` is passed as it is (SSL_CERT_FILE, ...); ``port``: come back on the same one."""
    port = port or free_port()
    prefix = f"TOLLGATE_{kind.upper()}_"
    full = {
        **(process_env or {}),
        f"{prefix}PORT": str(port),
        f"{prefix}HOST": "127.0.0.1",
        **{k if k.startswith("TOLLGATE_") else prefix + k: v for k, v in env.items()},
    }
    label = name or f"{kind}-{port}"
    proc = Proc(python_module(f"tollgate_{kind}"), log=workdir / f"{label}.log", env=full)
    try:
        proc.wait_http(f"http://127.0.0.1:{port}{health}", timeout=60)
    except BaseException:
        proc.stop()
        raise
    return Service(label, proc, port, kind, workdir, dict(env), health)


def start_auth(
    workdir: Path, redis_url: str, *, process_env: dict[str, str] | None = None, **env: str
) -> Service:
    return start_service(
        "auth",
        workdir,
        {"REDIS_URL": redis_url, "ADMIN_TOKEN": ADMIN_TOKEN, **env},
        process_env=process_env,
    )


def start_gateway(
    workdir: Path, redis_url: str, *, process_env: dict[str, str] | None = None, **env: str
) -> Service:
    return start_service(
        "gateway", workdir, {"REDIS_URL": redis_url, **env}, process_env=process_env
    )


def start_operator(workdir: Path, redis_url: str, kubeconfig: Path, **env: str) -> Service:
    """The kopf operator against ``kubeconfig``; ready when kopf's liveness endpoint answers."""
    health, metrics = free_port(), free_port()
    full = {
        "KUBECONFIG": str(kubeconfig),
        "TOLLGATE_OPERATOR_REDIS_URL": redis_url,
        "TOLLGATE_OPERATOR_HEALTH_PORT": str(health),
        "TOLLGATE_OPERATOR_METRICS_PORT": str(metrics),
        **{f"TOLLGATE_OPERATOR_{k}": v for k, v in env.items()},
    }
    proc = Proc(
        python_module("tollgate_operator"), log=workdir / f"operator-{health}.log", env=full
    )
    try:
        proc.wait_http(f"http://127.0.0.1:{health}/healthz", timeout=60)
    except BaseException:
        proc.stop()
        raise
    return Service(f"operator-{health}", proc, metrics)


def start_notifier(workdir: Path, redis_url: str, name: str, **env: str) -> Service:
    """The notifier named ``name`` (its consumer name), with short test timings."""
    base = {
        "REDIS_URL": redis_url,
        "CONSUMER": name,
        "BLOCK_MS": "100",
        "CLAIM_IDLE_MS": "1500",
        "BACKOFF_SECONDS": "0.2",
        "USAGE_BACKOFF_SECONDS": "0.1",
        "SEND_TIMEOUT_SECONDS": "0.5",
    }
    return start_service("notifier", workdir, {**base, **env}, name=name)
