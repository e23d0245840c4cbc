"""``python -m tollgate_auth``: the auth service on the services' own HTTP server
(tollgate_common/httpserver.py) over uvloop; workers and signals: tollgate_common/workers.py."""

from __future__ import annotations

import asyncio
import sys

from pydantic import ValidationError

from tollgate_auth.app import serve
from tollgate_auth.settings import AuthSettings
from tollgate_common import workers
from tollgate_common.logging import configure_logging


def main() -> None:
    try:
        s = AuthSettings()
    except ValidationError as exc:  # a clear line instead of a traceback
        sys.exit(f"tollgate-auth: invalid settings: {exc.errors()[0]['msg']}")
    configure_logging(s.log_level, s.log_json)

    async def run(stop: asyncio.Future[None], reuse_port: bool) -> None:
        await serve(s, stop, reuse_port=reuse_port)

    sys.exit(workers.run(run, s.workers))


if __name__ == "__main__":
    main()
