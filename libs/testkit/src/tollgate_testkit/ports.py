"""Loopback ports: free ones for tests, and who holds a taken one (for ``make run``'s message).

Free ports: bind to 0, read, close; the small race is retried by the callers. Holders are read
from ``/proc/net/tcp{,6}`` and ``/proc/<pid>/fd`` (what ``ss -ltnp`` reads), without psutil; a
process of another user stays anonymous unless we are root.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

LISTEN = "0A"  # the TCP_LISTEN state in /proc/net/tcp


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """``n`` free loopback ports, all different: each socket stays bound until the last is
    taken (``free_port`` called n times may hand out one port twice, the first socket being
    closed before the next bind; a server given two equal ports fails to start)."""
    with contextlib.ExitStack() as held:
        socks = [
            held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)
        ]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def port_taken(host: str, port: int) -> bool:
    """Whether a server could not listen on ``host:port`` because something else does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the servers themselves do: a TIME_WAIT left by a previous run does not block.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


@dataclass(frozen=True)
class Socket:
    address: str
    port: int  # the local port
    inode: int  # 0 for a socket no process holds any more (TIME_WAIT)
    listening: bool


def _address(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    # The kernel prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def parse_sockets(table: str) -> list[Socket]:
    """The sockets of one ``/proc/net/tcp`` or ``tcp6`` table, by local address (pure)."""
    out = []
    for line in table.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 10:
            continue
        hex_addr, _, hex_port = cols[1].partition(":")
        sock = Socket(_address(hex_addr), int(hex_port, 16), int(cols[9]), cols[3] == LISTEN)
        out.append(sock)
    return out


def sockets(port: int) -> list[Socket]:
    """Every TCP socket on this machine whose local port is ``port``, IPv4 and IPv6."""
    found: list[Socket] = []
    for name in ("tcp", "tcp6"):
        try:
            table = Path("/proc/net", name).read_text()
        except OSError:
            continue
        found += [so for so in parse_sockets(table) if so.port == port]
    return found


def listeners(port: int) -> list[Socket]:
    """The sockets listening on ``port``."""
    return [so for so in sockets(port) if so.listening]


def _owner(inodes: set[int]) -> str | None:
    wanted = {f"socket:[{i}]" for i in inodes if i}
    if not wanted:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(os.readlink(f"/proc/{pid}/fd/{fd}") in wanted for fd in fds):
                continue
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or another user's process
            continue
        cmd = " ".join(a.decode(errors="replace") for a in argv if a)
        return f"pid {pid}: {cmd[:160]}"
    return None


def holder(port: int) -> str:
    """Who holds ``port``, as well as /proc can tell: ``pid N: argv (...)`` or a vaguer phrase.
    Besides a server, a port can be the local end of a connection (one in the ephemeral range)."""
    found = listeners(port)
    what = "listening on"
    if not found:
        found, what = sockets(port), "a connection from"
    if not found:
        return "a process this check cannot see"
    where = ", ".join(sorted({f"{so.address}:{so.port}" for so in found}))
    owner = _owner({so.inode for so in found})
    if owner:
        return f"{owner} ({what} {where})"
    if not any(so.inode for so in found):
        return f"a connection closing (TIME_WAIT) from {where}"
    return f"another user's process ({what} {where})"
