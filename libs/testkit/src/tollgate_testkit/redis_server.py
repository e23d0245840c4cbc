"""A real redis-server on a free loopback port, in a temporary directory; optionally over TLS
only, with ACL users (Debian's redis-server is built with OpenSSL), or as a one-node Redis
Cluster (``ClusterRedisServer``)."""

from __future__ import annotations

import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from tollgate_testkit.pki import ServerPki
from tollgate_testkit.ports import free_port
from tollgate_testkit.procs import Proc


@dataclass(frozen=True)
class AclUser:
    """A Redis 6+ ACL user with every permission on every key (enough for Tollgate)."""

    name: str
    password: str

    def rule(self) -> str:
        return f"user {self.name} on >{self.password} ~* &* +@all"


class RedisServer:
    """``appendonly``: persist as the chart does (AOF, fsync every second), so a restart keeps
    the data; without it a restart comes back empty."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        tls: ServerPki | None = None,
        user: AclUser | None = None,
        appendonly: bool = False,
        extra: tuple[str, ...] = (),
    ) -> None:
        """``tls``: serve TLS only (``--port 0``), with this key pair; ``user``: the one ACL
        user, the passwordless default user switched off (so nothing works without AUTH);
        ``extra``: more redis-server arguments."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server not found: run `make install` (apt-get install redis-server)"
            )
        self.port = port or free_port()
        self.workdir = workdir
        self.tls = tls
        self.user = user
        self.appendonly = appendonly
        workdir.mkdir(parents=True, exist_ok=True)
        aof = ["--appendonly", "yes", "--appendfsync", "everysec"]
        if not appendonly:
            aof = ["--appendonly", "no"]
        argv = [binary, "--bind", "127.0.0.1", "--save", "", *aof]
        argv += ["--dir", str(workdir), "--protected-mode", "yes"]
        if tls is None:
            argv += ["--port", str(self.port)]
        else:
            argv += ["--port", "0", "--tls-port", str(self.port)]
            argv += ["--tls-cert-file", str(tls.cert), "--tls-key-file", str(tls.key)]
            argv += ["--tls-ca-cert-file", str(tls.ca), "--tls-auth-clients", "no"]
        if user is not None:
            acl = workdir / "users.acl"
            acl.write_text(f"user default off\n{user.rule()}\n")
            argv += ["--aclfile", str(acl)]
        self.extra = extra
        argv += list(extra)
        self.proc = Proc(argv, log=workdir / "redis.log")
        self.proc.wait_port(self.port)

    @property
    def url(self) -> str:
        scheme = "redis" if self.tls is None else "rediss"
        auth = f"{self.user.name}:{self.user.password}@" if self.user is not None else ""
        return f"{scheme}://{auth}127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.stop()

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop with ``sig`` (SIGKILL: a crash) and start again on the same port (an outage,
        then recovery)."""
        self.proc.kill(sig)
        self.stop()
        self.__init__(  # type: ignore[misc]
            self.workdir,
            self.port,
            tls=self.tls,
            user=self.user,
            appendonly=self.appendonly,
            extra=self.extra,
        )


def cluster_mode(conf: Path, bus_port: int) -> tuple[str, ...]:
    """redis-server's arguments of a cluster node: its nodes.conf and its bus port, a free port
    of its own (the default, port + 10000, overflows for a free port above 55535)."""
    return (
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        str(conf),
        "--cluster-port",
        str(bus_port),
    )


class ClusterRedisServer(RedisServer):
    """A one-node Redis Cluster: cluster mode on and every slot (0..16383) on this node, so the
    cluster's rules hold as on many nodes (a command or script whose keys span slots fails with
    CROSSSLOT) while a single-connection client needs no MOVED handling."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        conf = workdir / "nodes.conf"
        conf.unlink(missing_ok=True)
        super().__init__(
            workdir,
            port,
            extra=cluster_mode(conf, free_port()),
        )
        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            client.cluster("ADDSLOTSRANGE", 0, 16383)
            deadline = time.monotonic() + 30
            while "cluster_state:ok" not in _text(client.cluster("INFO")):
                if time.monotonic() > deadline:
                    raise RuntimeError("the one-node cluster never reached cluster_state:ok")
                time.sleep(0.05)
        finally:
            client.close()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"  # a cluster has only database 0


def _text(info: object) -> str:
    """CLUSTER INFO as text, whether redis-py parsed it into a dict or left it bytes."""
    if isinstance(info, dict):
        return "\n".join(f"{_s(k)}:{_s(v)}" for k, v in info.items())
    return _s(info)


def _s(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
