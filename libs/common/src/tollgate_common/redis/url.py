"""What a Redis URL means, decided once for both clients (redis-py and the lean one in resp.py).

Accepted: ``redis://[[username]:password@]host[:port][/db]`` and the same with ``rediss://``
(TLS). TLS verifies the server against the system trust store (``ssl.create_default_context()``,
so ``SSL_CERT_FILE``/``SSL_CERT_DIR`` extend it) and checks its hostname; there is no option to
turn either off and no fallback to plain TCP: the chart accepts ``rediss://`` so that the password
never crosses the network in clear text (issue 11). A username sends ``AUTH username password``
(Redis 6 ACLs), a password alone ``AUTH password``.

Redis Cluster (issue 13): ``redis+cluster://[[username]:password@]host[:port]`` and
``rediss+cluster://`` (TLS) name one seed node of a cluster; the clients learn the other nodes
from it (``CLUSTER SLOTS``) and follow MOVED/ASK. The same AUTH and TLS meaning holds for every
node (the certificate of each is checked against the host name the cluster announces for it). A
cluster has only database 0: a path other than ``/`` or ``/0`` is refused.

Anything else (another scheme, a query option such as redis-py's ``ssl_cert_reqs=none``, a
username without a password, a db that is not a number) is refused with a RedisUrlError that
names the setting and the problem, never the URL: it may hold the password.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio.connection import Connection, SSLConnection

SCHEMES = {  # scheme -> (TLS, cluster)
    "redis": (False, False),
    "rediss": (True, False),
    "redis+cluster": (False, True),
    "rediss+cluster": (True, True),
}


class RedisUrlError(ValueError):
    """A Redis URL this project does not accept; the message names the setting."""


@dataclass(frozen=True, slots=True)
class RedisTarget:
    host: str
    port: int
    db: int
    tls: bool
    cluster: bool = False  # a seed node of a Redis Cluster: the clients follow its slot map
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # repr: never in a log line

    def auth_args(self) -> tuple[str, ...]:
        """The AUTH command's arguments, empty when none is sent."""
        if self.password is None:
            return ()
        if self.username is None:
            return (self.password,)
        return (self.username, self.password)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every connection to this target (None: plain TCP)."""
        # create_default_context(): CERT_REQUIRED, check_hostname, TLS >= 1.2, system CAs.
        return ssl.create_default_context() if self.tls else None

    def at(self, host: str, port: int) -> RedisTarget:
        """The same credentials and transport on one node of the cluster, as one server."""
        return replace(self, host=host, port=port, cluster=False)

    def redis_py_kwargs(self) -> dict[str, Any]:
        """Connection keyword arguments for a redis-py pool with the same meaning."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "db": self.db,
            "username": self.username,
            "password": self.password,
            "connection_class": SSLConnection if self.tls else Connection,
        }
        if self.tls:
            # Spelled out rather than left to redis-py's defaults, which have changed between
            # releases (ssl_check_hostname was False before redis-py 6).
            kwargs |= {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
        return kwargs

    def redis_py_cluster_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for redis-py's RedisCluster with the same meaning (its seed node;
        the others get the same credentials and TLS checks)."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "ssl": self.tls,
        }
        if self.tls:
            kwargs |= {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
        return kwargs


def parse_redis_url(url: str, setting: str = "the Redis URL") -> RedisTarget:
    """The target a URL names; RedisUrlError (naming ``setting``) when it is not accepted."""

    def bad(problem: str) -> RedisUrlError:
        return RedisUrlError(f"{setting}: {problem}")

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise bad(
            "not a valid URL (expected redis[s]://[[user]:password@]host[:port][/db])"
        ) from None
    mode = SCHEMES.get(parts.scheme.lower())
    if mode is None:
        scheme = parts.scheme or "(none)"
        # the message as before the cluster schemes (a one-server deployment's operator reads
        # it; the cluster ones are in the docstring and the README)
        raise bad(f"unsupported scheme {scheme!r}: use redis:// or rediss:// (TLS)")
    tls, cluster = mode
    if parts.query or parts.fragment:
        names = sorted({kv.split("=", 1)[0] for kv in parts.query.split("&") if kv})
        what = ", ".join(names) if names else "a #fragment"
        raise bad(f"unsupported option(s) {what}: the URL takes no options")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise bad("the path must be a database number, as in /0")
    if cluster and int(path or 0) != 0:
        raise bad("a Redis Cluster has only database 0: drop the /db or use /0")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if username is not None and not password:
        raise bad("a username needs a password (redis://user:password@host)")
    if password == "":
        password = None
    return RedisTarget(
        host=parts.hostname or "127.0.0.1",
        port=port or 6379,
        db=int(path or 0),
        tls=tls,
        cluster=cluster,
        username=username,
        password=password,
    )
