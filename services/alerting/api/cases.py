"""HTTP routes of the alerting service: a tenant's follow-up cases, and marking them handled."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from libs.common.db import UnitOfWork
from libs.common.deps import Tenant, UoW
from libs.common.http import error_responses, invalid_request
from services.alerting import handlers
from services.alerting.desk_rows import DeskRow
from services.alerting.domain.cases import CaseStatus, InvalidTransition
from services.alerting.domain.desk import UNASSIGNED, Band, CaseFilter, Cursor, InvalidInput, Scope
from services.alerting.models import CaseEvent, FollowupCase
from services.alerting.repository import AlertingRepository

router = APIRouter(prefix="/v1/cases", tags=["cases"])


class Named(BaseModel):
    id: uuid.UUID
    name: str | None = Field(description="as the desk shows it; null if it no longer exists")


class TimelineEntry(BaseModel):
    id: int = Field(description="entries are ordered by id: the order things happened in")
    at: datetime
    kind: str = Field(
        description="what happened: `assigned`, `note`, `contact`, `contacted`, `resolved`, `reopened`, "
        "and the steps of the SLA clock"
    )
    actor: str = Field(description="who did it: a person's name, `API` for an API key, or `system`")
    actor_user_id: uuid.UUID | None
    body: str | None = Field(description="the text given: the note, the resolution, the reason")
    data: dict[str, object] = Field(description="the change's details, e.g. a contact's channel and outcome")

    @classmethod
    def of(cls, entry: CaseEvent) -> TimelineEntry:
        return cls(
            id=entry.id,
            at=entry.at,
            kind=entry.kind,
            actor=entry.actor,
            actor_user_id=entry.actor_user_id,
            body=entry.body,
            data=entry.data,
        )


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else f"{amount.normalize():f}"


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
    priority: Literal["urgent", "normal"] = Field(description="`urgent` for scores 0-4, `normal` for 5-6")
    assignee: Named | None = Field(description="the person the case is assigned to")
    team: Named | None = Field(description="the team the case is assigned to")
    routing_reason: str | None = Field(description="why the case went where it did, in words")
    order_id: str | None = Field(description="the order the answer was about")
    ticket_id: str | None = Field(description="the support ticket the answer was about")
    amount: str | None = Field(description="the order's amount, a decimal number as text")
    currency: str | None = Field(description="the amount's ISO 4217 currency")
    root_cause: str | None = Field(description="why the customer was unhappy, from the tenant's list")
    resolution_note: str | None = Field(description="what settled the case")
    reopened_at: datetime | None = Field(description="when the case was last reopened")
    timeline: list[TimelineEntry] = Field(description="everything that happened to the case, oldest first")

    @classmethod
    def of(
        cls, case: FollowupCase, timeline: Sequence[CaseEvent] = (), row: DeskRow | None = None
    ) -> CaseView:
        assignee_name = row.assignee_name if row is not None else None
        team_name = row.team_name if row is not None else None
        return cls.model_validate(
            {
                **_desk_fields(case, assignee_name, team_name),
                "timeline": [TimelineEntry.of(entry) for entry in timeline],
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


def _desk_fields(case: FollowupCase, assignee_name: str | None, team_name: str | None) -> dict[str, object]:
    assignee = case.assignee_user_id
    return {
        "priority": case.priority,
        "assignee": {"id": assignee, "name": assignee_name} if assignee is not None else None,
        "team": {"id": case.team_id, "name": team_name} if case.team_id is not None else None,
        "routing_reason": case.routing_reason,
        "order_id": case.order_id,
        "ticket_id": case.ticket_id,
        "amount": _money(case.amount),
        "currency": case.currency,
        "root_cause": case.root_cause,
        "resolution_note": case.resolution_note,
        "reopened_at": case.reopened_at,
    }


class CaseList(BaseModel):
    cases: list[CaseView]
    next_cursor: str | None = Field(
        default=None, description="pass as `cursor` for the next page; null on the last page"
    )


class CaseChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["contacted", "resolved"] = Field(
        description="`contacted` once somebody has reached out; `resolved` when it is settled"
    )
    note: str | None = Field(default=None, max_length=2000, description="what was done, for the record")


_ASSIGNEE = rf"^({UNASSIGNED}|[0-9a-fA-F-]{{32,36}})$"


def _cursor(cursor: str | None) -> Cursor | None:
    try:
        return Cursor.decode(cursor) if cursor is not None else None
    except InvalidInput as error:
        raise HTTPException(422, invalid_request(str(error), prefix="query.")) from None


def _assignee(assignee: str | None) -> uuid.UUID | str | None:
    if assignee is None or assignee == UNASSIGNED:
        return assignee
    try:
        return uuid.UUID(assignee)
    except ValueError:
        raise HTTPException(422, invalid_request("assignee: not a user id", prefix="query.")) from None


@router.get("", responses=error_responses(422))
async def list_cases(
    tenant: Tenant,
    uow: UoW,
    status: Annotated[Literal["open", "contacted", "resolved"] | None, Query()] = None,
    breached: Annotated[bool | None, Query(description="only cases that did (or did not) breach")] = None,
    touchpoint: Annotated[str | None, Query(max_length=63, description="only this touchpoint's")] = None,
    band: Annotated[Band | None, Query(description="`urgent` (scores 0-4) or `normal` (5-6)")] = None,
    assignee: Annotated[
        str | None, Query(pattern=_ASSIGNEE, description="a user's id, or `unassigned`")
    ] = None,
    team_id: Annotated[uuid.UUID | None, Query(description="only the cases of this team")] = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the page before")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CaseList:
    """The tenant's follow-up cases, soonest due first, optionally filtered; a page at a time:
    follow `next_cursor` for the next."""
    where = CaseFilter(
        status=CaseStatus(status) if status else None,
        touchpoint=touchpoint,
        band=band,
        assignee=_assignee(assignee),
        team_id=team_id,
        breached=breached,
    )
    found = await uow.repository.desk_cases(
        tenant.tenant_id, where=where, scope=Scope(), after=_cursor(cursor), limit=limit
    )
    timelines = await uow.repository.timelines([row.case.id for row in found.rows])
    last = found.rows[-1].case if found.rows and found.more else None
    return CaseList(
        cases=[CaseView.of(row.case, timelines[row.case.id], row) for row in found.rows],
        next_cursor=Cursor(last.due_at, last.id).encode() if last is not None else None,
    )


@router.get("/{case_id}", responses=error_responses(404))
async def get_case(tenant: Tenant, uow: UoW, case_id: uuid.UUID) -> CaseView:
    """One follow-up case, with its timeline."""
    return await case_view(uow, tenant.tenant_id, case_id)


async def case_view(
    uow: UnitOfWork[AlertingRepository], tenant_id: uuid.UUID, case_id: uuid.UUID
) -> CaseView:
    """The case as the API shows it; read inside the change's transaction, before it commits."""
    detail = await uow.repository.case_detail(tenant_id, case_id)
    if detail is None:
        raise HTTPException(404, f"no case {case_id}")
    return CaseView.of(detail.row.case, detail.timeline, detail.row)


@router.patch("/{case_id}", responses=error_responses(409))
async def update_case(tenant: Tenant, uow: UoW, case_id: uuid.UUID, change: CaseChange) -> CaseView:
    """Mark a case `contacted` or `resolved`. A case goes open → contacted → resolved, or straight
    from open to resolved; anything else answers 409 naming the transition. Every change is
    published as `followup.updated.v1`."""
    try:
        await handlers.update_case(
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
    view = await case_view(uow, tenant.tenant_id, case_id)
    await uow.commit()
    return view
