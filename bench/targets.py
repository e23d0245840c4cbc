"""What the benchmark measures: one row per target, each a request path and a start function.

Adding a row is a few lines in TARGETS: a name, the path (``{key}`` becomes a bench API key), and
a function that starts the server under test, or returns one already started (``env.once``), so
two rows can share a process (Tollgate miss and hit are one gateway). Servers under test run on
SERVER_CORE; the upstream, Redis, auth and the peers' helper services (ratelimit, forwardAuth)
share LOAD_CORE with the load generator. A row's ``helpers`` are the services its path calls: their
CPU counts in the whole-path column. A peer row (``peer``) is skipped with a line when its binary
is missing (bench/peers.py) and checked by its ``smoke`` before it is timed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import peers, servers
from bench.peerconfig import SMOKE_PREFIX, Keys
from bench.servers import Server

LOAD_CORE, SERVER_CORE = "0", "1"


@dataclass
class Env:
    """The bench's running processes: started on first use, each once, stopped in reverse."""

    work: Path
    started: list[Server] = field(default_factory=list)
    _by_key: dict[str, Server] = field(default_factory=dict)
    _key: str = ""
    _smoke_key: str = ""
    # The metered peers' keys: as long as Tollgate's (tg_ + 8 + _ + 43), so every row's request
    # line is the same size.
    keys: Keys = field(
        default_factory=lambda: Keys(
            "tg_" + secrets.token_urlsafe(39), "tg_" + secrets.token_urlsafe(39)
        )
    )

    def once(self, key: str, start: Callable[[], Server]) -> Server:
        if key not in self._by_key:
            self._by_key[key] = start()
            self.started.append(self._by_key[key])
        return self._by_key[key]

    @property
    def upstream(self) -> Server:
        return self.once("upstream", lambda: servers.upstream(self.work, LOAD_CORE))

    @property
    def upstream2(self) -> Server:
        """A second upstream for the race rows."""
        return self.once("upstream2", lambda: servers.upstream(self.work, LOAD_CORE, "upstream2"))

    @property
    def redis(self) -> Server:
        return self.once("redis", lambda: servers.redis(self.work, LOAD_CORE))

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis.port}/0"

    @property
    def auth(self) -> Server:
        return self.once("auth", lambda: servers.auth(self.work, LOAD_CORE, self.redis_url))

    @property
    def ratelimit(self) -> Server:
        return self.once(
            "ratelimit", lambda: peers.ratelimit(self.work, LOAD_CORE, self.redis.port)
        )

    @property
    def forward_auth(self) -> Server:
        return self.once(
            "forward-auth", lambda: peers.auth_endpoint(self.work, LOAD_CORE, self.keys)
        )

    @property
    def auth_url(self) -> str:
        return f"http://127.0.0.1:{self.auth.port}"

    @property
    def api_key(self) -> str:
        """Tollgate's timed key: on a plan whose rate limit is counted and never bites."""
        if not self._key:
            self._key = servers.bench_key(
                self.auth_url, self.redis_url, servers.BENCH_PLAN, never_bites=True
            )
        return self._key

    @property
    def smoke_key(self) -> str:
        """Tollgate's smoke key: its second request is over its plan's limit."""
        if not self._smoke_key:
            self._smoke_key = servers.bench_key(self.auth_url, self.redis_url, servers.SMOKE_PLAN)
        return self._smoke_key

    def under_test(self) -> list[Server]:
        return [s for s in self.started if s.core == SERVER_CORE]

    def stop_one(self, server: Server) -> None:
        """Stop one server (a row's gateway), the others staying up; a later ``once`` of its
        key starts it again."""
        server.stop()
        self.started.remove(server)
        self._by_key = {k: s for k, s in self._by_key.items() if s is not server}

    def stop(self) -> None:
        for s in reversed(self.started):
            s.stop()
        self.started.clear()
        self._by_key.clear()


def _none(_: Env) -> list[Server]:
    return []


class alone:
    """Pause every other server under test while ``server`` is measured."""

    def __init__(self, env: Env, server: Server) -> None:
        self.others = [s for s in env.under_test() if s is not server]

    def __enter__(self) -> None:
        for s in self.others:
            s.pause()

    def __exit__(self, *exc: object) -> None:
        for s in self.others:
            s.resume()


@dataclass(frozen=True)
class Target:
    name: str
    path: str
    start: Callable[[Env], Server]
    default: bool = True  # False: a variant, only with --variants or --only
    helpers: Callable[[Env], list[Server]] = _none  # what the path calls besides the server
    peer: str = ""  # a peer row: its key in peers.NEEDS, its family (before "-") for --peers
    smoke: Callable[[Env, Server], None] | None = None  # raises peers.SmokeFailed
    headers: tuple[str, ...] = ()  # "Name: value" on every request of the row

    def url(self, env: Env, server: Server) -> str:
        path = self.path.replace("{peer_key}", env.keys.bench)
        if "{key}" in path:  # only then is the auth service started
            path = path.replace("{key}", env.api_key)
        return f"http://127.0.0.1:{server.port}{path}"

    @property
    def family(self) -> str:
        return self.peer.split("-")[0]


def tollgate(env: Env, name: str = "tollgate", server: str = "tollgate", **extra: str) -> Server:
    """A gateway process with one worker, shared by the rows that name it."""
    return env.once(
        name,
        lambda: servers.gateway(
            env.work,
            SERVER_CORE,
            name,
            env.upstream.port,
            env.upstream2.port,
            env.redis_url,
            server,
            **extra,
        ),
    )


def _auth_http(e: Env) -> Server:
    return tollgate(e, "tollgate-auth", AUTH_URL=e.auth_url)


def _auth_ledger(e: Env) -> Server:
    # The ledger runs in the gateway (one EVALSHA); the key was made by the auth service.
    e.api_key  # noqa: B018  # the key must exist before the gateway's first request
    return tollgate(e, "tollgate-ledger", AUTH_MODE="redis")


def _jaeger_built() -> bool:
    from tollgate_testkit.jaeger import binary

    try:
        binary()
    except FileNotFoundError:
        return False
    return True


def _traced(ratio: str) -> Callable[[Env], Server]:
    """The miss row's gateway with tracing on at ``ratio``, exporting over OTLP/HTTP to a real
    Jaeger on the load core (the off row is "tollgate miss": no OTEL_* variable at all)."""

    def start(e: Env) -> Server:
        backend = e.once("jaeger", lambda: servers.jaeger(e.work, LOAD_CORE))
        return tollgate(
            e,
            f"tollgate-traced-{ratio}",
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{backend.port}",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG=ratio,
        )

    return start


def _granian(e: Env) -> Server:
    return tollgate(e, "tollgate-granian", server="granian")


def _uvicorn(e: Env) -> Server:
    return tollgate(e, "tollgate-uvicorn", server="variant:uvicorn")


def _stock(e: Env) -> Server:
    return tollgate(e, "tollgate-stock", server="variant:stock")


def _envoy(e: Env) -> Server:
    return e.once("envoy", lambda: peers.envoy(e.work, SERVER_CORE, "envoy", e.upstream.port))


def _envoy_metered(e: Env) -> Server:
    rl = e.ratelimit.port
    return e.once(
        "envoy-metered",
        lambda: peers.envoy(e.work, SERVER_CORE, "envoy-metered", e.upstream.port, e.keys, rl),
    )


def _traefik_metered(e: Env) -> Server:
    up, auth, rd = e.upstream.port, e.forward_auth.port, e.redis.port
    return e.once(
        "traefik-metered", lambda: peers.traefik_metered(e.work, SERVER_CORE, up, auth, rd)
    )


def _krakend(e: Env) -> Server:
    return e.once(
        "krakend", lambda: peers.krakend(e.work, SERVER_CORE, "krakend", [e.upstream.port])
    )


def _krakend_race(e: Env) -> Server:
    ups = [e.upstream.port, e.upstream2.port]
    return e.once(
        "krakend-race", lambda: peers.krakend(e.work, SERVER_CORE, "krakend-race", ups, 2)
    )


def _peer_smoke(prefix: str) -> Callable[[Env, Server], None]:
    """The metered peers' smoke: their keys, the timed path, the smoke key on ``prefix``."""

    def check(e: Env, s: Server) -> None:
        base = f"http://127.0.0.1:{s.port}"
        peers.smoke(
            f"{base}{PROXY}?api_key={e.keys.bench}",
            f"{base}{PROXY}",
            f"{base}{prefix}eod/AAPL?api_key={e.keys.smoke}",
        )

    return check


def _tollgate_smoke(path: str) -> Callable[[Env, Server], None]:
    def check(e: Env, s: Server) -> None:
        base = f"http://127.0.0.1:{s.port}{path}"
        peers.smoke(f"{base}?api_key={e.api_key}", base, f"{base}?api_key={e.smoke_key}")

    return check


def _redis(e: Env) -> list[Server]:
    return [e.redis]


def _auth_redis(e: Env) -> list[Server]:
    return [e.auth, e.redis]


PROXY = "/api/v1/eod/AAPL"  # the peers strip /api/v1 and pass /eod/AAPL on
MISS, HIT = "/api/v1/live/AAPL", PROXY  # Tollgate's cache-off and cached routes
INGRESS_REQUEST_ID = "X-Request-Id: 4f6a2b9c1d3e5f708192a3b4c5d6e7f8"  # as ingress-nginx adds
RACE = "/api/v1/race/AAPL"  # Tollgate's race of the two upstreams, cache off
KEY = "?api_key={key}"
PEER_KEY = "?api_key={peer_key}"

TARGETS = [
    Target("direct", "/eod/AAPL", lambda e: e.upstream),
    Target(
        "nginx",
        PROXY,
        lambda e: e.once(
            "nginx", lambda: servers.nginx_proxy(e.work, SERVER_CORE, e.upstream.port)
        ),
    ),
    Target(
        "traefik",
        PROXY,
        lambda e: e.once("traefik", lambda: servers.traefik(e.work, SERVER_CORE, e.upstream.port)),
    ),
    Target("envoy", PROXY, _envoy, peer="envoy"),
    Target("krakend", PROXY, _krakend, peer="krakend"),
    Target(
        "seed fastapi+httpx",
        PROXY,
        lambda e: e.once("seed", lambda: servers.seed(e.work, SERVER_CORE, e.upstream.port)),
    ),
    Target("tollgate miss", MISS, tollgate, helpers=_redis),
    Target("tollgate hit", HIT, tollgate, helpers=_redis),
    Target(
        "envoy key+ratelimit",
        PROXY + PEER_KEY,
        _envoy_metered,
        helpers=lambda e: [e.ratelimit, e.redis],
        peer="envoy-metered",
        smoke=_peer_smoke("/api/v1/"),
    ),
    Target(
        "traefik fwdauth+ratelimit",
        PROXY + PEER_KEY,
        _traefik_metered,
        helpers=lambda e: [e.forward_auth, e.redis],
        peer="traefik-metered",
        smoke=_peer_smoke(SMOKE_PREFIX),
    ),
    Target(
        "tollgate+auth miss",
        MISS + KEY,
        _auth_http,
        helpers=_auth_redis,
        smoke=_tollgate_smoke(MISS),
    ),
    Target("tollgate+auth hit", HIT + KEY, _auth_http, helpers=_auth_redis),
    Target(
        "tollgate+ledger miss",
        MISS + KEY,
        _auth_ledger,
        helpers=_redis,
        smoke=_tollgate_smoke(MISS),
    ),
    Target("tollgate+ledger hit", HIT + KEY, _auth_ledger, helpers=_redis),
    Target("krakend race", PROXY, _krakend_race, peer="krakend"),
    Target("tollgate race", RACE, tollgate, helpers=_redis),
    # Tracing (issue 12): the miss row sampled at 1 % and 100 % (off: "tollgate miss"); default
    # rows once make install has built the trace backend.
    Target(
        "tollgate miss traced 1%", MISS, _traced("0.01"), helpers=_redis, default=_jaeger_built()
    ),
    Target(
        "tollgate miss traced 100%", MISS, _traced("1.0"), helpers=_redis, default=_jaeger_built()
    ),
    # Behind an ingress that adds an X-Request-Id to every request (ingress-nginx does by
    # default): the head sampler's other quick path, the client's id kept (issue 12); the
    # untraced row with the same header is its base.
    Target(
        "tollgate miss x-request-id", MISS, tollgate, helpers=_redis, headers=(INGRESS_REQUEST_ID,)
    ),
    Target(
        "tollgate miss traced 1% x-request-id",
        MISS,
        _traced("0.01"),
        helpers=_redis,
        default=_jaeger_built(),
        headers=(INGRESS_REQUEST_ID,),
    ),
    # Sampled at 0 %: every hook on and the exporter's thread running, nothing ever sampled: the
    # part of the 1 % row's cost that is not the sampled requests' own (python -m bench.ab).
    Target("tollgate miss traced 0%", MISS, _traced("0.0"), helpers=_redis, default=False),
    # Variants: the same gateway as an ASGI app under other servers (bench/variants.py).
    Target("tollgate miss uvicorn", MISS, _uvicorn, default=False),
    Target("tollgate hit uvicorn", HIT, _uvicorn, default=False),
    Target("tollgate miss stock uvicorn", MISS, _stock, default=False),
    Target("tollgate hit stock uvicorn", HIT, _stock, default=False),
    Target("tollgate miss granian", MISS, _granian, default=False),
    Target("tollgate hit granian", HIT, _granian, default=False),
]
ALWAYS = ("direct", "traefik")  # the ratios need them
FAMILIES = ("envoy", "traefik", "krakend")  # --peers: envoy = both Envoy rows, and so on


def select(only: str, variants: bool, peers_: str = "all") -> list[Target]:
    """``--only a,b`` (plus direct and traefik), the default rows, and with ``--variants`` the
    variant rows too; of the peer rows only the families in ``--peers`` (``all``, ``none`` or a
    list such as ``envoy,krakend``)."""
    families = _families(peers_)
    if only:
        wanted = {n.strip() for n in only.split(",")}
        unknown = wanted - {t.name for t in TARGETS}
        if unknown:
            raise SystemExit(f"unknown targets: {sorted(unknown)}; known: {names()}")
        picked = [t for t in TARGETS if t.name in wanted or t.name in ALWAYS]
    else:
        picked = [t for t in TARGETS if variants or t.default]
    return [t for t in picked if not t.peer or t.family in families]


def _families(peers_: str) -> set[str]:
    if peers_ == "all":
        return set(FAMILIES)
    if peers_ == "none":
        return set()
    wanted = {p.strip() for p in peers_.split(",") if p.strip()}
    if wanted - set(FAMILIES):
        raise SystemExit(f"unknown peers: {sorted(wanted - set(FAMILIES))}; known: {FAMILIES}")
    return wanted


def names() -> list[str]:
    return [t.name for t in TARGETS]
