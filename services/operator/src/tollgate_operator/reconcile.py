"""Pure reconciliation: every ApiBackend -> the gateways' route table, and each one's status.

Service endpoints become cluster DNS URLs; a spec the gateway cannot serve (which the CRD schema
normally refuses) makes that resource not Ready without touching the others; two resources on one
pathPrefix: the oldest wins (then by namespace/name), and both statuses say so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import ValidationError

from tollgate_common.contracts.routes import ApiBackendSpec, Endpoint, Route, resolve_conflicts
from tollgate_operator.api import Backend, Condition


@dataclass(frozen=True, slots=True)
class Desired:
    routes: list[Route]  # the table's routes, sorted by name (version is the sink's business)
    status: dict[str, tuple[Condition, int]]  # key -> (Ready condition, endpoint count)


def resolve_endpoint(ep: Endpoint, namespace: str, domain: str) -> Endpoint:
    if ep.service is None:
        return ep
    s = ep.service
    url = f"{s.scheme}://{s.name}.{namespace}.svc.{domain}:{s.port}"
    return Endpoint(url=url, weight=ep.weight)


def to_route(b: Backend, domain: str) -> Route:
    """Raises ValueError for a spec the gateway cannot serve."""
    spec = ApiBackendSpec.model_validate(b.spec)
    endpoints = [resolve_endpoint(e, b.namespace, domain) for e in spec.endpoints]
    return Route(
        name=b.key, spec=spec.model_copy(update={"endpoints": endpoints}), created=b.created
    )


def reconcile(backends: Iterable[Backend], domain: str) -> Desired:
    routes: list[Route] = []
    status: dict[str, tuple[Condition, int]] = {}
    for b in sorted(backends, key=lambda x: x.key):
        if b.deleting:
            continue
        try:
            routes.append(to_route(b, domain))
        except (ValidationError, ValueError) as exc:
            lines = str(exc).splitlines()
            status[b.key] = (Condition("Ready", "False", "InvalidSpec", " ".join(lines[:3])), 0)
    winners, losers = resolve_conflicts(routes)
    rivals: dict[str, list[str]] = {}
    for loser, holder in losers.items():
        rivals.setdefault(holder, []).append(loser)
    for r in routes:
        prefix = r.spec.path_prefix
        if r.name in losers:
            status[r.name] = (
                Condition(
                    "Ready",
                    "False",
                    "PrefixConflict",
                    f"pathPrefix {prefix} is held by {losers[r.name]}",
                ),
                0,
            )
            continue
        msg = f"serving {prefix} on {len(r.spec.endpoints)} endpoint(s)"
        if r.name in rivals:
            msg += f"; also claimed by {', '.join(sorted(rivals[r.name]))} (this one is older)"
        status[r.name] = (Condition("Ready", "True", "Published", msg), len(r.spec.endpoints))
    return Desired(winners, status)


@dataclass(frozen=True, slots=True)
class EventSpec:
    """A Kubernetes Event to post on a resource (``type`` is Normal or Warning)."""

    type: str
    reason: str
    message: str


def event_for(cond: Condition, previous: dict[str, object] | None) -> EventSpec | None:
    """An Event when the Ready condition changes (status, reason or message), none otherwise:
    the periodic drift check re-reconciles every resource and must not post one each time."""
    for c in (previous or {}).get("conditions", []) or []:  # type: ignore[attr-defined]
        if c.get("type") == cond.type and (c.get("status"), c.get("reason"), c.get("message")) == (
            cond.status,
            cond.reason,
            cond.message,
        ):
            return None
    kind = "Normal" if cond.status == "True" else "Warning"
    return EventSpec(kind, cond.reason, cond.message)


def status_patch(
    cond: Condition,
    endpoints: int,
    generation: int,
    table_version: int,
    previous: dict[str, object] | None,
    now: str,
) -> dict[str, object]:
    """The status subresource for one resource; lastTransitionTime moves only on a change."""
    since = now
    for c in (previous or {}).get("conditions", []) or []:  # type: ignore[attr-defined]
        if c.get("type") == cond.type and c.get("status") == cond.status:
            since = c.get("lastTransitionTime") or now
    return {
        "observedGeneration": generation,
        "endpoints": endpoints,
        "tableVersion": table_version,
        "conditions": [
            {
                "type": cond.type,
                "status": cond.status,
                "reason": cond.reason,
                "message": cond.message,
                "observedGeneration": generation,
                "lastTransitionTime": since,
            }
        ],
    }
