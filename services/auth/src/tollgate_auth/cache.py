"""The admin API's hold on the gateways' response cache: ``DELETE /v1/admin/cache`` purges a
route's entries, or those under a path prefix, from Redis and from every gateway's in-process
tier (tollgate_common/contracts/cachekeys.py has the layout and the channel; issue 13). Included
in the admin app behind its admin token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from tollgate_auth.errors import StoreDown
from tollgate_common.contracts.cachekeys import Purge, purge

router = APIRouter()


@router.delete("/v1/admin/cache")
async def purge_cache(request: Request, p: Annotated[Purge, Query()]) -> dict[str, Any]:
    """Delete the cached answers of ``route`` (whose path starts with ``prefix``, when given);
    the gateways drop their in-process copies within a second (pub/sub)."""
    redis = request.app.state.service.redis
    if redis is None:
        raise StoreDown("starting up")
    deleted = await purge(redis, p)
    return {"status": True, "route": p.route, "prefix": p.prefix, "deleted": deleted}
