"""``make run`` (tollgate_testkit.devstack) as a real process: where it listens, what it says."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tollgate_testkit.devbanner import Endpoints, banner
from tollgate_testkit.devstack import Ports
from tollgate_testkit.ports import listeners, port_taken
from tollgate_testkit.procs import Proc, python_module

START_TIMEOUT = 120.0  # five services on a shared 2-core machine; a bound, not a measurement


def free_offset() -> int:
    """A port offset that puts every port of the stack on a free one (other stacks may run),
    below the kernel's ephemeral range: a port in it can be taken, between this check and the
    stack's start, as the local end of any client's connection (a CI flake: the auth port was)."""
    ephemeral_low = 32768
    with contextlib.suppress(OSError, ValueError):
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    base = Ports().named().values()
    top = ephemeral_low - max(base) - 1
    for _ in range(100):
        offset = random.randrange(1, max(top, 2))
        if not any(port_taken("127.0.0.1", p) for p in Ports().shifted(offset).named().values()):
            return offset
    raise RuntimeError("no free port offset found")


@dataclass
class DevStack:
    proc: Proc
    ports: Ports
    run_dir: Path

    def demo(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.run_dir / "demo.json").read_text())
        return data

    def wait_output(self, text: str, timeout: float = START_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.proc.output()
            if text in out:
                return out
            if not self.proc.alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"devstack never said {text!r}:\n{self.proc.output()[-4000:]}")


Start = Callable[..., DevStack]


@pytest.fixture
def devstack(tmp_path: Path) -> Iterator[Start]:
    """Start ``python -m tollgate_testkit.devstack`` on free ports; stopped (SIGTERM) after."""
    started: list[DevStack] = []

    def start(*args: str, offset: int | None = None) -> DevStack:
        offset = free_offset() if offset is None else offset
        run_dir = tmp_path / f"run-{len(started)}"
        argv = python_module(
            "tollgate_testkit.devstack", "--run-dir", str(run_dir), "--port-offset", str(offset)
        )
        proc = Proc([*argv, *args], log=tmp_path / f"devstack-{len(started)}.log")
        stack = DevStack(proc, Ports().shifted(offset), run_dir)
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.proc.stop(timeout=30)


def test_listens_on_loopback_only_by_default(devstack: Start) -> None:
    """Without --host every process of the stack listens on 127.0.0.1 and nowhere else."""
    stack = devstack()
    stack.wait_output("Tollgate is running")
    where = {name: {li.address for li in listeners(p)} for name, p in stack.ports.named().items()}
    assert where == {name: {"127.0.0.1"} for name in stack.ports.named()}


def test_a_dead_upstream_leaves_the_stack_up(devstack: Start) -> None:
    """SIGKILL of one demo upstream: the devstack says so, stays up, the gateway still answers."""
    stack = devstack()
    stack.wait_output("Tollgate is running")
    demo = stack.demo()
    pid = demo["pids"]["upstream-a"]
    os.kill(pid, signal.SIGKILL)
    out = stack.wait_output(f"upstream-a (pid {pid}, port {stack.ports.upstream_a}) was killed")
    assert "SIGKILL" in out
    assert stack.proc.alive()
    r = httpx.get(f"{demo['gateway']}/api/v1/eod/AAPL", params={"api_key": demo["key"]}, timeout=30)
    assert r.status_code == 200
    assert r.json()["server"] == "b"
    assert stack.proc.stop(timeout=30) == 0
    assert "Traceback" not in stack.proc.output()


def test_a_taken_port_is_named_with_its_holder(devstack: Start) -> None:
    """A port already in use: the devstack names the port, the service and the holder's pid,
    starts nothing and exits 2, without a traceback."""
    offset = free_offset()
    gateway = Ports().shifted(offset).gateway
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", gateway))
        squatter.listen()
        stack = devstack(offset=offset)
        assert stack.proc.popen.wait(START_TIMEOUT) == 2
    out = stack.proc.output()
    assert f"{gateway} (gateway): pid {os.getpid()}" in out
    assert "Traceback" not in out
    assert listeners(stack.ports.redis) == []


def test_banner_ends_with_how_to_stop() -> None:
    """The banner's last line says how to stop the stack; break and heal are one-liners."""
    ep = Endpoints("127.0.0.1", "127.0.0.1", 8080, 8081, (9001, 9002), Path(".run"))
    text = banner(ep, "tg_x_y", "dev-token")
    assert text.strip().splitlines()[-1].strip().startswith("Stop: Ctrl-C")
    assert '{"mode":"error500"}' in text
    assert '{"mode":"ok"}' in text


def test_banner_warns_when_every_interface_listens() -> None:
    """--host 0.0.0.0: the banner says the admin token's API is reachable from the network."""
    ep = Endpoints("0.0.0.0", "127.0.0.1", 8080, 8081, (9001, 9002), Path(".run"))
    assert "every interface" in banner(ep, "tg_x_y", "dev-token")
    assert "http://127.0.0.1:8080/api/v1/eod/AAPL" in banner(ep, "tg_x_y", "dev-token")
