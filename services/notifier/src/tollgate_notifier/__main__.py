"""``python -m tollgate_notifier``."""

from __future__ import annotations

import uvicorn

from tollgate_common.settings import load_settings
from tollgate_common.tracing import check_tracing_env
from tollgate_notifier.settings import NotifierSettings


def main() -> None:
    s = load_settings(NotifierSettings, "tollgate-notifier")
    check_tracing_env("tollgate-notifier")
    uvicorn.run(
        "tollgate_notifier.app:main_app",
        factory=True,
        host=s.host,
        port=s.port,
        loop="uvloop",
        access_log=False,
        log_level=s.log_level.lower(),
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
