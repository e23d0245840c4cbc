"""What the benchmark measures: one row per target, each a request path and a start function.

Adding a row is a few lines in TARGETS: a name, the path (``{key}`` becomes a bench API key), and
a function that starts the server under test, or returns one already started (``env.once``), so
two rows can share a process (Tollgate miss and hit are one gateway). Servers under test run on
SERVER_CORE; the upstream, Redis and auth share LOAD_CORE with the load generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import servers
from bench.servers import Server

LOAD_CORE, SERVER_CORE = "0", "1"


@dataclass
class Env:
    """The bench's running processes: started on first use, each once, stopped in reverse."""

    work: Path
    started: list[Server] = field(default_factory=list)
    _by_key: dict[str, Server] = field(default_factory=dict)
    _key: str = ""

    def once(self, key: str, start: Callable[[], Server]) -> Server:
        if key not in self._by_key:
            self._by_key[key] = start()
            self.started.append(self._by_key[key])
        return self._by_key[key]

    @property
    def upstream(self) -> Server:
        return self.once("upstream", lambda: servers.upstream(self.work, LOAD_CORE))

    @property
    def redis_url(self) -> str:
        rd = self.once("redis", lambda: servers.redis(self.work, LOAD_CORE))
        return f"redis://127.0.0.1:{rd.port}/0"

    @property
    def auth_url(self) -> str:
        au = self.once("auth", lambda: servers.auth(self.work, LOAD_CORE, self.redis_url))
        return f"http://127.0.0.1:{au.port}"

    @property
    def api_key(self) -> str:
        if not self._key:
            self._key = servers.bench_key(self.auth_url)
        return self._key

    def under_test(self) -> list[Server]:
        return [s for s in self.started if s.core == SERVER_CORE]

    def stop(self) -> None:
        for s in reversed(self.started):
            s.stop()
        self.started.clear()
        self._by_key.clear()


@dataclass(frozen=True)
class Target:
    name: str
    path: str
    start: Callable[[Env], Server]
    default: bool = True  # False: a variant, only with --variants or --only

    def url(self, env: Env, server: Server) -> str:
        path = self.path.format(key=env.api_key) if "{key}" in self.path else self.path
        return f"http://127.0.0.1:{server.port}{path}"


def tollgate(env: Env, name: str = "tollgate", server: str = "tollgate", **extra: str) -> Server:
    """A gateway process with one worker, shared by the rows that name it."""
    return env.once(
        name,
        lambda: servers.gateway(
            env.work, SERVER_CORE, name, env.upstream.port, env.redis_url, server, **extra
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


PROXY = "/api/v1/eod/AAPL"  # the peers strip /api/v1 and pass /eod/AAPL on
MISS, HIT = "/api/v1/live/AAPL", PROXY  # Tollgate's cache-off and cached routes
KEY = "?api_key={key}"

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
    Target(
        "seed fastapi+httpx",
        PROXY,
        lambda e: e.once("seed", lambda: servers.seed(e.work, SERVER_CORE, e.upstream.port)),
    ),
    Target("tollgate miss", MISS, tollgate),
    Target("tollgate hit", HIT, tollgate),
    Target("tollgate+auth miss", MISS + KEY, _auth_http),
    Target("tollgate+auth hit", HIT + KEY, _auth_http),
    Target("tollgate+ledger miss", MISS + KEY, _auth_ledger),
    Target("tollgate+ledger hit", HIT + KEY, _auth_ledger),
    # Tracing (issue 12): the miss row sampled at 1 % and 100 % (off: "tollgate miss"); default
    # rows once make install has built the trace backend.
    Target("tollgate miss traced 1%", MISS, _traced("0.01"), default=_jaeger_built()),
    Target("tollgate miss traced 100%", MISS, _traced("1.0"), default=_jaeger_built()),
    # Variants: the same gateway as an ASGI app under other servers (bench/variants.py).
    Target("tollgate miss uvicorn", MISS, _uvicorn, default=False),
    Target("tollgate hit uvicorn", HIT, _uvicorn, default=False),
    Target("tollgate miss stock uvicorn", MISS, _stock, default=False),
    Target("tollgate hit stock uvicorn", HIT, _stock, default=False),
    Target("tollgate miss granian", MISS, _granian, default=False),
    Target("tollgate hit granian", HIT, _granian, default=False),
]
ALWAYS = ("direct", "traefik")  # the ratios need them


def select(only: str, variants: bool) -> list[Target]:
    """``--only a,b`` (plus direct and traefik), the default rows, and with ``--variants`` the
    variant rows too."""
    if only:
        wanted = {n.strip() for n in only.split(",")}
        unknown = wanted - {t.name for t in TARGETS}
        if unknown:
            raise SystemExit(f"unknown targets: {sorted(unknown)}; known: {names()}")
        return [t for t in TARGETS if t.name in wanted or t.name in ALWAYS]
    return [t for t in TARGETS if variants or t.default]


def names() -> list[str]:
    return [t.name for t in TARGETS]
