"""HTTP routes of the alerting service: a tenant's follow-up cases, and marking them handled."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from libs.common.deps import Tenant, UoW
from libs.common.http import error_responses
from services.alerting import handlers
from services.alerting.domain.cases import CaseStatus, InvalidTransition
from services.alerting.models import FollowupCase

router = APIRouter(prefix="/v1/cases", tags=["cases"])


class CaseView(BaseModel):
    id: uuid.UUID
    customer_id: str
    touchpoint: str
    score: int = Field(description="the customer's current score: it may change within the grace period")
    comment: str | None = Field(description="the customer's current comment: why they answered so")
    recommended: bool | None = Field(description="whether they recommended us in the last 12 months")
    csat: int | None = Field(description="their satisfaction, 1-5")
    effort: int | None = Field(description="how much effort it took them, 1-7")
    status: Literal["open", "contacted", "resolved"]
    resolution: Literal["handled", "score_changed"] | None = Field(
        description="why a resolved case was resolved: `handled` by somebody, or `score_changed` when "
        "the customer replaced their detractor score with a passive or promoter one"
    )
    owner_email: str | None
    note: str | None = Field(description="the latest note on the case, given or automatic")
    opened_at: datetime = Field(description="when the customer answered")
    due_at: datetime = Field(description="when the customer should have been contacted by")
    contacted_at: datetime | None
    resolved_at: datetime | None
    breached: bool = Field(description="whether the case was still open after its due time")
    breached_at: datetime | None

    @classmethod
    def of(cls, case: FollowupCase) -> CaseView:
        return cls.model_validate(
            {
                "id": case.id,
                "customer_id": case.customer_id,
                "touchpoint": case.touchpoint,
                "score": case.score,
                "comment": case.comment,
                "recommended": case.recommended,
                "csat": case.csat,
                "effort": case.effort,
                "status": case.status,
                "resolution": case.resolution,
                "owner_email": case.owner_email,
                "note": case.note,
                "opened_at": case.opened_at,
                "due_at": case.due_at,
                "contacted_at": case.contacted_at,
                "resolved_at": case.resolved_at,
                "breached": case.breached_at is not None,
                "breached_at": case.breached_at,
            }
        )


class CaseList(BaseModel):
    cases: list[CaseView]


class CaseChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["contacted", "resolved"] = Field(
        description="`contacted` once somebody has reached out; `resolved` when it is settled"
    )
    note: str | None = Field(default=None, max_length=2000, description="what was done, for the record")


@router.get("")
async def list_cases(
    tenant: Tenant,
    uow: UoW,
    status: Annotated[Literal["open", "contacted", "resolved"] | None, Query()] = None,
    breached: Annotated[bool | None, Query(description="only cases that did (or did not) breach")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CaseList:
    """The tenant's follow-up cases, newest answer first, optionally filtered by status and by
    whether they breached the SLA."""
    cases = await uow.repository.list_cases(tenant.tenant_id, status=status, breached=breached, limit=limit)
    return CaseList(cases=[CaseView.of(case) for case in cases])


@router.get("/{case_id}")
async def get_case(tenant: Tenant, uow: UoW, case_id: uuid.UUID) -> CaseView:
    """One follow-up case."""
    case = await uow.repository.get_case(tenant.tenant_id, case_id)
    if case is None:
        raise HTTPException(404, f"no case {case_id}")
    return CaseView.of(case)


@router.patch("/{case_id}", responses=error_responses(409))
async def update_case(tenant: Tenant, uow: UoW, case_id: uuid.UUID, change: CaseChange) -> CaseView:
    """Mark a case `contacted` or `resolved`. A case goes open → contacted → resolved, or straight
    from open to resolved; anything else answers 409 naming the transition. Every change is
    published as `followup.updated.v1`."""
    try:
        case = await handlers.update_case(
            uow,
            tenant_id=tenant.tenant_id,
            case_id=case_id,
            status=CaseStatus(change.status),
            note=change.note,
            now=datetime.now(UTC),
        )
    except handlers.CaseNotFound:
        raise HTTPException(404, f"no case {case_id}") from None
    except InvalidTransition as error:
        raise HTTPException(409, str(error)) from None
    view = CaseView.of(case)
    await uow.commit()
    return view
