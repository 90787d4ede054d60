"""HTTP routes of the tenant-wide rules: the rest period and its clock."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from libs.common.deps import Tenant, UoW
from services.trigger.api.dependencies import TriggerConfig
from services.trigger.handlers.common import rest_policy
from services.trigger.repository import TriggerRepository

router = APIRouter()


class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rest_period_days: int = Field(ge=0, le=3650, description="days before a customer may be asked again")
    rest_clock: Literal["invitation", "response"] = Field(
        default="invitation",
        description="count the rest period from the last invitation or the last response",
    )


@router.get("/v1/policy", tags=["rules"])
async def get_policy(tenant: Tenant, uow: UoW, settings: TriggerConfig) -> dict[str, Any]:
    """The tenant-wide rules: the rest period and what its clock counts from."""
    policy = await rest_policy(uow.repository, tenant.tenant_id, settings)
    return {"rest_period_days": policy.rest_period.days, "rest_clock": policy.clock}


@router.put("/v1/policy", tags=["rules"])
async def put_policy(tenant: Tenant, uow: UoW, body: PolicyBody) -> dict[str, Any]:
    """Change the tenant-wide rules. They apply to decisions made from now on."""
    repository: TriggerRepository = uow.repository
    await repository.set_rest_period(tenant.tenant_id, body.rest_period_days, body.rest_clock)
    await uow.commit()
    return body.model_dump()
