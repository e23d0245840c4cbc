"""An open-loop fixed-rate load generator, the fallback when oha is not installed (wrk cannot
hold a rate). Each of C keep-alive connections sends on a fixed schedule and a
request's latency runs from its *scheduled* time, so a stalled server is charged for the queue it
causes (no coordinated omission).

Run: python -m bench.fixedrate URL RATE SECONDS [CONNS [HEADER ...]]
    -> prints "sent ok p50_ms p99_ms"; each HEADER ("Name: value") goes on every request
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from bench.report import percentile


async def _conn(
    host: str,
    port: int,
    target: str,
    interval: float,
    start: float,
    end: float,
    lat: list[float],
    errors: list[int],
    extra: str = "",
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    req = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode()
    t = start
    while t < end:
        now = time.perf_counter()
        if t > now:
            await asyncio.sleep(t - now)
        writer.write(req)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                errors[0] += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            errors[0] += 1
            return
        lat.append((time.perf_counter() - t) * 1000)
        t += interval
    writer.close()


async def run(
    url: str, rate: float, seconds: float, conns: int = 32, headers: Sequence[str] = ()
) -> tuple[int, int, float, float]:
    u = urlsplit(url)
    extra = "".join(f"{h}\r\n" for h in headers)
    target = u.path + ("?" + u.query if u.query else "")
    lat: list[float] = []
    errors = [0]
    interval = conns / rate
    start = time.perf_counter() + 0.2
    end = start + seconds
    await asyncio.gather(
        *(
            _conn(
                u.hostname or "127.0.0.1",
                u.port or 80,
                target,
                interval,
                start + i * interval / conns,
                end,
                lat,
                errors,
                extra,
            )
            for i in range(conns)
        )
    )
    return len(lat) + errors[0], errors[0], percentile(lat, 50), percentile(lat, 99)


def main() -> None:
    import uvloop

    url, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    conns = int(sys.argv[4]) if len(sys.argv) > 4 else 32
    sent, errs, p50, p99 = uvloop.run(run(url, rate, seconds, conns, sys.argv[5:]))
    print(f"{sent} {sent - errs} {p50:.3f} {p99:.3f}")


if __name__ == "__main__":
    main()
