"""The case desk's actions over the REST API: notes, contacts, assignment, resolving, reopening.

Each appends to the case's timeline (nothing on it is ever changed) and emits
``followup.updated.v1``; each answers with the case as ``GET /v1/cases/{id}`` shows it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from libs.common.db import UnitOfWork
from libs.common.deps import Tenant, unit_of_work
from libs.common.http import error_responses, invalid_request
from services.alerting import handlers
from services.alerting.api.cases import CaseView, case_view
from services.alerting.domain import desk
from services.alerting.domain.cases import InvalidTransition
from services.alerting.handlers.common import API_ACTOR
from services.alerting.repository import AlertingRepository

router = APIRouter(prefix="/v1/cases", tags=["case desk"])

DeskUoW = Annotated[UnitOfWork[AlertingRepository], Depends(unit_of_work)]
_ERRORS = error_responses(404, 409, 422)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoteBody(_Body):
    text: str = Field(min_length=1, max_length=desk.MAX_NOTE, description="the note, kept as written")


class ContactBody(_Body):
    channel: desk.Channel = Field(description="how the customer was approached: phone, email or meeting")
    outcome: desk.Outcome = Field(
        description="`reached`, `left_message` or `no_answer`; only the first `reached` counts as the "
        "case's contact: it stops the SLA clock and moves an open case to `contacted`"
    )
    note: str | None = Field(default=None, max_length=desk.MAX_NOTE, description="what was said")


class AssignBody(_Body):
    user_id: uuid.UUID | None = Field(default=None, description="a user of the tenant; null for nobody")
    team_id: uuid.UUID | None = Field(default=None, description="a team of the tenant; null for none")


class ResolveBody(_Body):
    root_cause: str = Field(
        min_length=1,
        max_length=100,
        description="why the customer was unhappy: one of the tenant's root causes",
    )
    resolution: str = Field(min_length=1, max_length=desk.MAX_RESOLUTION, description="what settled it")


class ReopenBody(_Body):
    reason: str = Field(min_length=1, max_length=desk.MAX_REASON, description="why the case is open again")


Change = Callable[[datetime], Awaitable[object]]


async def _apply(
    uow: UnitOfWork[AlertingRepository], tenant: Tenant, case_id: uuid.UUID, change: Change
) -> CaseView:
    """Run one action, mapping the rules' refusals to the API's answers, and commit."""
    try:
        await change(datetime.now(UTC))
    except handlers.CaseNotFound:
        raise HTTPException(404, f"no case {case_id}") from None
    except handlers.NotInTenant as error:
        raise HTTPException(404, str(error)) from None
    except InvalidTransition as error:
        raise HTTPException(409, str(error)) from None
    except desk.InvalidInput as error:
        raise HTTPException(422, invalid_request(str(error))) from None
    view = await case_view(uow, tenant.tenant_id, case_id)
    await uow.commit()
    return view


@router.post("/{case_id}/notes", responses=_ERRORS)
async def add_note(tenant: Tenant, uow: DeskUoW, case_id: uuid.UUID, body: NoteBody) -> CaseView:
    """Add a note to the case's timeline. Notes are never changed or removed, but by the customer's
    erasure (README, "Privacy: erasure"), which blanks them."""
    return await _apply(
        uow,
        tenant,
        case_id,
        lambda now: handlers.add_note(
            uow, tenant_id=tenant.tenant_id, case_id=case_id, actor=API_ACTOR, text=body.text, now=now
        ),
    )


@router.post("/{case_id}/contacts", responses=_ERRORS)
async def log_contact(tenant: Tenant, uow: DeskUoW, case_id: uuid.UUID, body: ContactBody) -> CaseView:
    """Log an attempt to reach the customer. Reaching them the first time sets `contacted_at` and
    moves an open case to `contacted`; a message left or a call unanswered is kept but changes
    nothing: it has not won anyone back."""
    return await _apply(
        uow,
        tenant,
        case_id,
        lambda now: handlers.log_contact(
            uow,
            tenant_id=tenant.tenant_id,
            case_id=case_id,
            actor=API_ACTOR,
            channel=body.channel,
            outcome=body.outcome,
            note=body.note,
            now=now,
        ),
    )


@router.post("/{case_id}/assign", responses=_ERRORS)
async def assign(tenant: Tenant, uow: DeskUoW, case_id: uuid.UUID, body: AssignBody) -> CaseView:
    """Assign the case to a user and/or a team of the tenant (404 for one it does not have); both
    null leaves it with nobody."""
    return await _apply(
        uow,
        tenant,
        case_id,
        lambda now: handlers.assign(
            uow,
            tenant_id=tenant.tenant_id,
            case_id=case_id,
            actor=API_ACTOR,
            user_id=body.user_id,
            team_id=body.team_id,
            now=now,
        ),
    )


@router.post("/{case_id}/resolve", responses=_ERRORS)
async def resolve(tenant: Tenant, uow: DeskUoW, case_id: uuid.UUID, body: ResolveBody) -> CaseView:
    """Resolve the case with a root cause from the tenant's list (422 naming the allowed ones
    otherwise) and what settled it. A resolved case answers 409."""
    return await _apply(
        uow,
        tenant,
        case_id,
        lambda now: handlers.resolve(
            uow,
            tenant_id=tenant.tenant_id,
            case_id=case_id,
            actor=API_ACTOR,
            root_cause=body.root_cause,
            resolution=body.resolution,
            now=now,
        ),
    )


@router.post("/{case_id}/reopen", responses=_ERRORS)
async def reopen(tenant: Tenant, uow: DeskUoW, case_id: uuid.UUID, body: ReopenBody) -> CaseView:
    """Reopen a resolved case (409 for one that is not): it is `open` again, its resolution stays
    on the timeline."""
    return await _apply(
        uow,
        tenant,
        case_id,
        lambda now: handlers.reopen(
            uow, tenant_id=tenant.tenant_id, case_id=case_id, actor=API_ACTOR, reason=body.reason, now=now
        ),
    )
