"""The operator's one settings class (env prefix ``TOLLGATE_OPERATOR_``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints
from pydantic_settings import SettingsConfigDict

from tollgate_common.settings import ServiceSettings

# A namespace name (DNS-1123 label). `helm --set operator.namespaces={}` renders [""], and kopf
# would then watch a namespace that cannot exist, silently serving no route: refuse it at start.
Namespace = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]


class OperatorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TOLLGATE_OPERATOR_", extra="ignore", frozen=True)

    namespaces: list[Namespace] = Field(
        default_factory=list, description="Namespaces to watch (JSON list); empty = all."
    )
    cluster_domain: str = Field("cluster.local", description="For Service endpoint URLs.")
    drift_check_seconds: float = Field(
        30.0, gt=0, description="How often each resource re-publishes and re-checks its status."
    )
    health_port: int = Field(8083, ge=1, le=65535, description="kopf liveness: /healthz.")
    metrics_port: int = Field(8084, ge=1, le=65535, description="Prometheus /metrics.")
