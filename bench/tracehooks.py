"""``python -m bench.tracehooks``: the per-request CPU of the gateway's tracing hooks on an
unsampled request (issue 12), in-process and side by side in one run: the server span's wrapper
and the proxy's hooks (``routed``, ``attempts``, the upstream ``inject``) around an empty handler,
against the same handler untraced. Pure Python, no I/O: what it measures is the hooks' own code,
not the cache and scheduling effects of a real process (the ``tollgate miss traced 1%`` row of
``make bench`` has those). Min of ``--runs`` runs, which filters other load on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Awaitable, Callable

from tollgate_common.http.exchange import Incoming, Reply
from tollgate_common.served import SERVED
from tollgate_common.tracing import inject, setup_tracing
from tollgate_gateway.request import request_id
from tollgate_gateway.tracing import GatewayTracing
from tollgate_gateway.upstreams import CompiledRoute

CLIENT = [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"wrk/4.2"), (b"accept", b"*/*")]
UPSTREAM = [(b"x-forwarded-for", b"127.0.0.1"), (b"x-request-id", b"abc")]
Handler = Callable[[Incoming], Awaitable[Reply | None]]


async def _body(_n: int) -> bytes:
    return b""


async def _gone() -> None:
    return None


def per_request_us(handler: Handler, n: int, runs: int) -> float:
    """The handler's CPU per request, driven without an event loop (it never suspends)."""
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(n):
            req = Incoming("GET", "/api/v1/live/AAPL", b"/api/v1/live/AAPL", b"",
                           list(CLIENT), "127.0.0.1", "http", _body, _gone)  # fmt: skip
            with contextlib.suppress(StopIteration):
                next(handler(req).__await__())
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    os.environ.update(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",  # nothing is exported at ratio 0
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0",
    )
    tracing = setup_tracing("bench")
    assert tracing is not None
    hooks = GatewayTracing(tracing.tracer, tracing.heads)
    route: CompiledRoute | None = None  # attempts() looks no further on an unsampled request

    async def plain(req: Incoming) -> Reply | None:
        request_id(req.headers)
        list(UPSTREAM)
        return None

    async def hooked(req: Incoming) -> Reply | None:  # a sampled request's (none at ratio 0)
        request_id(req.headers)
        hooks.routed("live")
        hooks.attempts(route, "GET", [])  # type: ignore[arg-type]
        inject(list(UPSTREAM))
        return None

    async def unsampled(req: Incoming) -> Reply | None:  # the proxy's untraced twin
        request_id(req.headers)
        list(UPSTREAM)
        if not SERVED.get()[1]:  # the upstream pool's one look (client.py)
            inject(list(UPSTREAM))
        return None

    traced = hooks.server(hooked, unsampled)
    off = per_request_us(plain, args.requests, args.runs)
    on = per_request_us(traced, args.requests, args.runs)
    print(f"untraced {off:.2f} us/request, traced and unsampled {on:.2f} us/request: "
          f"the hooks cost {on - off:.2f} us a request")  # fmt: skip
    tracing.shutdown()


if __name__ == "__main__":
    main()
