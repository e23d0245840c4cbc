"""``python -m tollgate_auth``: serve with uvicorn."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from tollgate_auth.settings import AuthSettings


def main() -> None:
    try:
        s = AuthSettings()
    except ValidationError as exc:  # a clear line instead of a traceback
        sys.exit(f"tollgate-auth: invalid settings: {exc.errors()[0]['msg']}")
    uvicorn.run(
        "tollgate_auth.app:main_app",
        factory=True,
        host=s.host,
        port=s.port,
        workers=s.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=s.log_level.lower(),
        timeout_graceful_shutdown=30,
        # Its clients are gateways; X-Forwarded-For handling would only add work per request.
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
