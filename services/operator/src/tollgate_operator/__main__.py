"""``python -m tollgate_operator``: run the kopf operator.

One replica, Deployment strategy Recreate, and kopf in standalone mode: the table is a pure
function of the resources and every publish is idempotent, so two operators overlapping for a
moment during a rollout would only write the same table twice; kopf's peering would add CRDs and
"freeze" semantics without giving true leader election.
"""

from __future__ import annotations

import asyncio

import kopf

from tollgate_common.logging import configure_logging
from tollgate_common.settings import load_settings
from tollgate_operator.handlers import register
from tollgate_operator.settings import OperatorSettings


def main() -> None:
    s = load_settings(OperatorSettings, "tollgate-operator")
    configure_logging(s.log_level, s.log_json)
    asyncio.run(
        kopf.operator(
            registry=register(s),
            memo=kopf.Memo(settings=s),
            standalone=True,
            clusterwide=not s.namespaces,
            namespaces=s.namespaces,
            liveness_endpoint=f"http://0.0.0.0:{s.health_port}/healthz",
        )
    )


if __name__ == "__main__":
    main()
