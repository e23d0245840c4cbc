"""Other ways to serve the same gateway app, measured as optional bench rows
(``python -m bench --variants``) against the production entry point, ``python -m tollgate_gateway``
(tollgate_gateway/serving.py). Run as ``python -m bench.variants`` with the gateway's usual
environment plus ``BENCH_VARIANT``:

- ``stock``: uvicorn's own httptools protocol, which writes a response's head and body with two
  ``write()`` syscalls; production joins them into one (serving.OneWriteProtocol, first measured
  here: +13% req/s on a miss, +21% on a hit). The row keeps showing what that buys.

The granian rows need no launcher: servers.gateway starts ``granian --interface asgi`` directly.
A new candidate is a branch below and a row in targets.py; measure it before anyone adopts it.
"""

from __future__ import annotations

import os

import uvicorn

from tollgate_gateway.settings import GatewaySettings

VARIANTS = ("stock",)


def main() -> None:
    variant = os.environ.get("BENCH_VARIANT", "")
    if variant not in VARIANTS:
        raise SystemExit(f"BENCH_VARIANT must be one of {VARIANTS}, not {variant!r}")
    s = GatewaySettings()
    uvicorn.run(
        "tollgate_gateway.app:main_app",
        factory=True,
        host=s.host,
        port=s.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=s.log_level.lower(),
        proxy_headers=False,
        server_header=False,
        backlog=2048,
    )


if __name__ == "__main__":
    main()
