"""The ApiBackend resource as the operator sees it: the one place its shape is described in
Python. The spec is tollgate_common's ApiBackendSpec (the gateway's own model); the status is
conditions in the Kubernetes convention plus observedGeneration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GROUP = "tollgate.dev"
VERSION = "v1alpha1"
PLURAL = "apibackends"


@dataclass(frozen=True, slots=True)
class Backend:
    """What reconcile needs of one resource (a snapshot from the kopf index)."""

    namespace: str
    name: str
    created: str
    generation: int
    spec: dict[str, Any]
    deleting: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


def snapshot(body: Any) -> Backend:
    meta = body["metadata"]
    return Backend(
        namespace=meta["namespace"],
        name=meta["name"],
        created=str(meta.get("creationTimestamp", "")),
        generation=int(meta.get("generation", 0)),
        spec=dict(body.get("spec") or {}),
        deleting=bool(meta.get("deletionTimestamp")),
    )
