"""Who holds a port, read from /proc the way ``ss -ltnp`` does."""

from __future__ import annotations

import os
import socket

from tollgate_testkit.ports import Socket, free_ports, holder, parse_sockets, port_taken

TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1
   1: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1
   2: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 333 1
"""
ROW6 = "   0: 00000000000000000000000001000000:1F92 00000000000000000000000000000000:0000 0A"
TCP6 = f"  sl  local_address remote_address st\n{ROW6} 00000000:00000000 00:00000000 0 0 0 444 1\n"


def test_parses_local_ends() -> None:
    """Each row gives local address, port, inode and whether it listens."""
    assert parse_sockets(TCP) == [
        Socket("127.0.0.1", 8080, 111, listening=True),
        Socket("0.0.0.0", 8081, 222, listening=True),
        Socket("127.0.0.1", 8080, 333, listening=False),
    ]


def test_parses_ipv6_words() -> None:
    """tcp6 addresses are four little-endian words: ::1 reads back as ::1."""
    assert parse_sockets(TCP6) == [Socket("::1", 8082, 444, listening=True)]


def test_names_the_process_holding_a_port() -> None:
    """A socket this process listens on: taken, and held by this pid."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_taken("127.0.0.1", port)
        assert holder(port).startswith(f"pid {os.getpid()}: ")
    assert not port_taken("127.0.0.1", port)


def test_names_the_process_whose_connection_holds_a_port() -> None:
    """A port that is only a connection's local end is taken too, and its holder is named."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            port = client.getsockname()[1]
            assert port_taken("127.0.0.1", port)
            who = holder(port)
            assert who.startswith(f"pid {os.getpid()}: ")
            assert who.endswith(f"(a connection from 127.0.0.1:{port})")


def test_free_ports_are_all_different_and_free() -> None:
    """A server given several ports (Jaeger takes seven) gets no port twice, and each can be
    bound once the call returns."""
    ports = free_ports(64)
    assert len(set(ports)) == 64
    assert not any(port_taken("127.0.0.1", p) for p in ports)
