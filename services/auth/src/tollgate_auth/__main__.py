"""``python -m tollgate_auth``: the auth service on the services' own HTTP server
(tollgate_common/http/server.py) over uvloop; workers and signals: http/workers.py there."""

from __future__ import annotations

import asyncio
import sys

from tollgate_auth.app import serve
from tollgate_auth.settings import AuthSettings
from tollgate_common.http import workers
from tollgate_common.logging import configure_logging
from tollgate_common.settings import load_settings
from tollgate_common.tracing import check_tracing_env


def main() -> None:
    s = load_settings(AuthSettings, "tollgate-auth")
    check_tracing_env("tollgate-auth")
    configure_logging(s.log_level, s.log_json)

    async def run(stop: asyncio.Future[None], reuse_port: bool) -> None:
        await serve(s, stop, reuse_port=reuse_port)

    sys.exit(workers.run(run, s.workers))


if __name__ == "__main__":
    main()
