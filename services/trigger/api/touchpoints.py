"""HTTP routes of touchpoints and their versions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response
from pydantic import BaseModel

from libs.common.deps import Tenant, UoW
from services.trigger import handlers
from services.trigger.domain.touchpoints import DEFAULT_TOUCHPOINTS
from services.trigger.models import Touchpoint
from services.trigger.repository import TriggerRepository
from services.trigger.schemas import TOUCHPOINT_NAME, TouchpointConfig

router = APIRouter()


class TouchpointView(BaseModel):
    name: str
    version: int
    config: dict[str, Any]
    created_at: datetime | None
    retired_at: datetime | None = None
    built_in: bool = False


def _view(row: Touchpoint) -> TouchpointView:
    return TouchpointView(
        name=row.name,
        version=row.version,
        config=row.config,
        created_at=row.created_at,
        retired_at=row.retired_at,
    )


TouchpointName = Annotated[str, Path(pattern=TOUCHPOINT_NAME, description="e.g. webshop-purchase")]


@router.get("/v1/touchpoints", tags=["rules"])
async def list_touchpoints(tenant: Tenant, uow: UoW) -> dict[str, Any]:
    """The tenant's touchpoints in their current versions. A tenant that has configured none gets
    the built-in ones (`webshop-purchase`, `support-ticket`, version 0)."""
    repository: TriggerRepository = uow.repository
    rows = await repository.active_touchpoints(tenant.tenant_id)
    if rows:
        return {"touchpoints": [_view(row).model_dump(mode="json") for row in rows]}
    built_in = [
        TouchpointView(
            name=rule.name,
            version=0,
            config={"event_types": sorted(rule.event_types)},
            created_at=None,
            built_in=True,
        ).model_dump(mode="json")
        for rule in DEFAULT_TOUCHPOINTS
    ]
    return {"touchpoints": built_in}


@router.put("/v1/touchpoints/{name}", tags=["rules"])
async def put_touchpoint(
    tenant: Tenant, uow: UoW, name: TouchpointName, body: TouchpointConfig
) -> dict[str, Any]:
    """Create or change a touchpoint. Every change is a new version; decisions made afterwards
    name it, earlier decisions keep theirs. Once a tenant has a touchpoint of its own, the built-in
    ones no longer apply: `warnings` says so when the change leaves `purchase.completed.v1` or
    `ticket.closed.v1` taken by no touchpoint (such events are then `filtered`)."""
    config = body.model_dump(mode="json", exclude_none=True)
    version, warnings = await handlers.set_touchpoint(uow, tenant.tenant_id, name, config, datetime.now(UTC))
    await uow.commit()
    return {"name": name, "version": version, "config": config, "warnings": warnings}


@router.get("/v1/touchpoints/{name}/versions", tags=["rules"])
async def touchpoint_history(tenant: Tenant, uow: UoW, name: TouchpointName) -> dict[str, Any]:
    """Every version of a touchpoint, newest first."""
    repository: TriggerRepository = uow.repository
    rows = await repository.touchpoint_versions(tenant.tenant_id, name)
    if not rows:
        raise HTTPException(404, f"no touchpoint {name!r}")
    return {"name": name, "versions": [_view(row).model_dump(mode="json") for row in rows]}


@router.delete("/v1/touchpoints/{name}", status_code=204, tags=["rules"])
async def retire_touchpoint(tenant: Tenant, uow: UoW, name: TouchpointName) -> Response:
    """Retire a touchpoint: it takes no more events. Its versions stay, for the decisions that used them."""
    repository: TriggerRepository = uow.repository
    if not await repository.retire_touchpoint(tenant.tenant_id, name, datetime.now(UTC)):
        raise HTTPException(404, f"no active touchpoint {name!r}")
    await uow.commit()
    return Response(status_code=204)
