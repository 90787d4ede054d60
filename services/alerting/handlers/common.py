"""What the alerting handlers share: the ids they derive, the facts an email is written from, and
the ``followup.updated`` event every change of a case emits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from libs.common.db import UnitOfWork
from libs.common.events import FollowupUpdated
from libs.common.sessions import Person
from services.alerting.domain import notices
from services.alerting.handlers.timeline import after_change
from services.alerting.models import CaseEvent, FollowupCase
from services.alerting.repository import AlertingRepository

_CASE_NAMESPACE = uuid.UUID("0b7f4e1c-6a2d-4f0e-9c3b-8d5a1e2f7c64")


def case_id_for(response_id: uuid.UUID) -> uuid.UUID:
    """Derived, not random: the same answer always maps to the same case."""
    return uuid.uuid5(_CASE_NAMESPACE, str(response_id))


def event_id(case_id: uuid.UUID, change: str) -> str:
    # Each change happens at most once per case (a status is reached once, a breach stamped once),
    # so re-running the change re-emits the same event id and consumers drop the repeat.
    return str(uuid.uuid5(case_id, change))


def case_facts(case: FollowupCase, desk_url: str | None = None) -> notices.CaseFacts:
    return notices.CaseFacts(
        case_id=case.id,
        customer_id=case.customer_id,
        customer_name=case.customer_name,
        customer_email=case.customer_email,
        touchpoint=case.touchpoint,
        score=case.score,
        comment=case.comment,
        opened_at=case.opened_at,
        due_at=case.due_at,
        owner_email=case.owner_email,
        recommended=case.recommended,
        csat=case.csat,
        effort=case.effort,
        case_url=notices.case_url(desk_url, case.id) if desk_url else None,
    )


def emit_updated(uow: UnitOfWork[Any], case: FollowupCase, change: str, now: datetime) -> None:
    """``followup.updated``: the case as it now stands."""
    data = FollowupUpdated(
        case_id=case.id,
        status=case.status,
        breached=case.breached_at is not None,
        updated_at=now,
        touchpoint=case.touchpoint,
        priority=case.priority,
        assignee_user_id=case.assignee_user_id,
        assignee_name=case.assignee_name,
        team_id=case.team_id,
        team_name=case.team_name,
        opened_at=case.opened_at,
        contacted_at=case.contacted_at,
        seconds_to_contact=_seconds(case.opened_at, case.contacted_at),
        # The due time is the first-contact deadline in the tenant's business hours.
        contact_within_sla=None if case.contacted_at is None else case.contacted_at <= case.due_at,
        resolved_at=case.resolved_at,
        seconds_to_resolution=_seconds(case.opened_at, case.resolved_at),
        root_cause=case.root_cause,
        recovery_score=case.recovery_score,
    )
    uow.emit(
        data, tenant_id=case.tenant_id, subject=str(case.id), event_id=event_id(case.id, change), time=now
    )


@dataclass(frozen=True, slots=True)
class Actor:
    """Who changes a case: a signed-in person (whose view of the tenant's cases may be narrowed),
    or a machine with the tenant's API key, which sees them all."""

    name: str
    user_id: uuid.UUID | None = None
    person: Person | None = None

    @classmethod
    def of(cls, person: Person) -> Actor:
        return cls(person.name, person.user_id, person)


API_ACTOR = Actor("API")


async def record_case_event(
    uow: UnitOfWork[AlertingRepository],
    case: FollowupCase,
    actor: Actor,
    kind: str,
    now: datetime,
    *,
    body: str | None = None,
    data: dict[str, object] | None = None,
    change: str | None = None,
) -> int:
    """Append the change to the case's timeline and tell the others (``followup.updated``). The
    event id is the timeline entry's unless ``change`` names it: each entry is one change."""
    entry = CaseEvent(
        tenant_id=case.tenant_id,
        case_id=case.id,
        at=now,
        kind=kind,
        actor=actor.name,
        actor_user_id=actor.user_id,
        body=body,
        data=data or {},
    )
    entry_id = await uow.repository.add_case_event(entry)
    case.updated_at = now
    # The SLA clock and the recovery survey follow the change (a contact, a resolution, a reopening).
    after_change(case, await uow.repository.desk_policy(case.tenant_id), now)
    emit_updated(uow, case, change or f"{kind}:{entry_id}", now)
    return entry_id


def _seconds(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else max(0.0, (end - start).total_seconds())
