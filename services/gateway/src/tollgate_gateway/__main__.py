"""``python -m tollgate_gateway``: serve with uvicorn (uvloop + httptools; see serving.py)."""

from __future__ import annotations

import uvicorn

from tollgate_gateway.serving import OneWriteProtocol
from tollgate_gateway.settings import GatewaySettings


def main() -> None:
    s = GatewaySettings()
    uvicorn.run(
        "tollgate_gateway.app:main_app",
        factory=True,
        host=s.host,
        port=s.port,
        workers=s.workers,
        loop="uvloop",
        http=OneWriteProtocol,
        access_log=s.access_log,
        log_level=s.log_level.lower(),
        timeout_graceful_shutdown=30,
        backlog=2048,
        # X-Forwarded-For is the gateway's own business (headers.py, TRUST_FORWARDED_FOR);
        # uvicorn's middleware for it would only add work to every request.
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
