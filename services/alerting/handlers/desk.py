"""The case desk's actions: assign, add a note, log a contact, resolve, reopen.

Each loads the case (locked), asks the rules (``domain/desk.py``), changes the case, appends the
change to its timeline and emits ``followup.updated.v1``, all in the caller's unit of work: the
edge commits. A case the actor may not see is as unknown as one that does not exist.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from libs.common.db import UnitOfWork
from services.alerting.domain import desk
from services.alerting.domain.cases import CaseStatus
from services.alerting.domain.revisions import Resolution
from services.alerting.handlers.cases import CaseNotFound
from services.alerting.handlers.common import Actor, record_case_event
from services.alerting.handlers.timeline import restart_clock
from services.alerting.models import FollowupCase
from services.alerting.repository import AlertingRepository

log = logging.getLogger(__name__)


class NotInTenant(Exception):
    """A user or team to assign to that the tenant does not have (another tenant's is not ours)."""

    def __init__(self, field: str, value: uuid.UUID) -> None:
        super().__init__(f"no {field.removesuffix('_id')} {value} in this tenant")
        self.field = field


async def visible_case(
    uow: UnitOfWork[AlertingRepository],
    tenant_id: uuid.UUID,
    case_id: uuid.UUID,
    actor: Actor,
    *,
    for_update: bool = False,
) -> FollowupCase:
    case = await uow.repository.get_case(tenant_id, case_id, for_update=for_update)
    if case is None:
        raise CaseNotFound(case_id)
    if actor.person is not None:
        teams = await uow.repository.team_ids_of(tenant_id, actor.person.user_id)
        if not desk.visible(actor.person, case, teams):
            raise CaseNotFound(case_id)
    return case


def _logged(case: FollowupCase, change: str) -> None:
    log.info(
        "followup.updated",
        extra={
            "case_id": str(case.id),
            "tenant_id": str(case.tenant_id),
            "change": change,
            "status": case.status,
        },
    )


async def assign(
    uow: UnitOfWork[AlertingRepository],
    *,
    tenant_id: uuid.UUID,
    case_id: uuid.UUID,
    actor: Actor,
    user_id: uuid.UUID | None,
    team_id: uuid.UUID | None,
    now: datetime,
) -> FollowupCase:
    """Give the case to a user and/or a team of the tenant (``None`` leaves it with nobody)."""
    user = await uow.repository.tenant_user(tenant_id, user_id) if user_id is not None else None
    if user_id is not None and (user is None or not user.active):
        raise NotInTenant("user_id", user_id)
    team = await uow.repository.tenant_team(tenant_id, team_id) if team_id is not None else None
    if team_id is not None and team is None:
        raise NotInTenant("team_id", team_id)
    case = await visible_case(uow, tenant_id, case_id, actor, for_update=True)
    case.assignee_user_id = user_id
    case.team_id = team_id
    # The new owner is who the clock's reminders and breaches now go to, and reports name.
    case.assignee_name = user.name if user else None
    case.team_name = team.name if team else None
    if user is not None:
        case.owner_email = user.email
    names = [name for name in (user.name if user else None, team.name if team else None) if name]
    data: dict[str, object] = {
        "user_id": str(user_id) if user_id else None,
        "user_name": user.name if user else None,
        "team_id": str(team_id) if team_id else None,
        "team_name": team.name if team else None,
    }
    body = f"Assigned to {' / '.join(names)}" if names else "Unassigned"
    await record_case_event(uow, case, actor, "assigned", now, body=body, data=data)
    _logged(case, "assigned")
    return case


async def add_note(
    uow: UnitOfWork[AlertingRepository],
    *,
    tenant_id: uuid.UUID,
    case_id: uuid.UUID,
    actor: Actor,
    text: str | None,
    now: datetime,
) -> FollowupCase:
    """A note joins the timeline; earlier notes stay as they were. The case shows the latest."""
    note = desk.checked_text("text", text, longest=desk.MAX_NOTE)
    case = await visible_case(uow, tenant_id, case_id, actor, for_update=True)
    case.note = note
    await record_case_event(uow, case, actor, "note", now, body=note)
    _logged(case, "note")
    return case


async def log_contact(
    uow: UnitOfWork[AlertingRepository],
    *,
    tenant_id: uuid.UUID,
    case_id: uuid.UUID,
    actor: Actor,
    channel: desk.Channel,
    outcome: desk.Outcome,
    note: str | None,
    now: datetime,
) -> FollowupCase:
    """Every attempt to reach the customer is kept; reaching them the first time is the contact
    the SLA waits for (``desk.log_contact``)."""
    text = desk.checked_note(note) if note is not None and note.strip() else None
    case = await visible_case(uow, tenant_id, case_id, actor, for_update=True)
    effect = desk.log_contact(CaseStatus(case.status), case.contacted_at is not None, outcome)
    if effect.first_contact:
        case.contacted_at = now
    case.status = effect.status.value
    data: dict[str, object] = {
        "channel": channel.value,
        "outcome": outcome.value,
        "first_contact": effect.first_contact,
        "status": case.status,
    }
    await record_case_event(uow, case, actor, "contact", now, body=text, data=data)
    _logged(case, "contact")
    return case


async def resolve(
    uow: UnitOfWork[AlertingRepository],
    *,
    tenant_id: uuid.UUID,
    case_id: uuid.UUID,
    actor: Actor,
    root_cause: str | None,
    resolution: str | None,
    now: datetime,
) -> FollowupCase:
    """Settle the case with a root cause from the tenant's list and what was done."""
    allowed = (await uow.repository.desk_policy(tenant_id)).root_causes
    case = await visible_case(uow, tenant_id, case_id, actor, for_update=True)
    settled = desk.resolve(CaseStatus(case.status), root_cause, resolution, allowed)
    case.status = settled.status.value
    case.resolved_at = now
    case.resolution = Resolution.HANDLED.value
    case.root_cause = settled.root_cause
    case.resolution_note = settled.text
    data: dict[str, object] = {"status": case.status, "root_cause": settled.root_cause}
    await record_case_event(uow, case, actor, "resolved", now, body=settled.text, data=data)
    _logged(case, "resolved")
    return case


async def reopen(
    uow: UnitOfWork[AlertingRepository],
    *,
    tenant_id: uuid.UUID,
    case_id: uuid.UUID,
    actor: Actor,
    reason: str | None,
    now: datetime,
) -> FollowupCase:
    """A resolved case is open again. Its resolution leaves the case (it no longer holds) but stays
    on the timeline, as everything does."""
    text = desk.checked_text("reason", reason, longest=desk.MAX_REASON)
    case = await visible_case(uow, tenant_id, case_id, actor, for_update=True)
    case.status = desk.reopen(CaseStatus(case.status)).value
    data: dict[str, object] = {
        "status": case.status,
        "previous_root_cause": case.root_cause,
        "previous_resolution": case.resolution_note,
    }
    case.reopened_at = now
    case.resolved_at = None
    case.resolution = None
    case.root_cause = None
    case.resolution_note = None
    await restart_clock(uow, case, now)
    await record_case_event(uow, case, actor, "reopened", now, body=text, data=data)
    _logged(case, "reopened")
    return case
