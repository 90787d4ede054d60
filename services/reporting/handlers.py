"""Reporting's event handlers: they project events into the read model. They never commit."""

from __future__ import annotations

import uuid
from typing import Any

from prometheus_client import Counter

from libs.common.db import UnitOfWork
from libs.common.events import Contract, Event, FollowupOpened, FollowupUpdated, SurveyResponded, SurveySent
from libs.common.kafka import RejectEvent
from services.reporting import repository
from services.reporting.domain.cases import CaseFacts, merge
from services.reporting.repository import CaseKey

PROJECTED = Counter(
    "nps_reporting_events_projected_total", "Events added to the read model, by type", ["type"]
)


def _tenant_uuid(event: Event[Contract]) -> uuid.UUID:
    try:
        return uuid.UUID(event.tenant_id)
    except ValueError:
        raise RejectEvent(f"tenantid: {event.tenant_id!r} is not a tenant id") from None


async def project(events: list[Event[Contract]], uow: UnitOfWork) -> None:
    """Add a batch of survey and follow-up events to the read model: one statement per table.

    Invitations and answers are facts that never change, so a repeat is simply ignored; cases are
    merged (see :mod:`services.reporting.domain.cases`) within the batch, then with what is stored.
    """
    invitations: dict[tuple[uuid.UUID, uuid.UUID], dict[str, Any]] = {}
    answers: dict[tuple[uuid.UUID, uuid.UUID], dict[str, Any]] = {}
    cases: dict[CaseKey, CaseFacts] = {}
    for event in events:
        data = event.data
        if isinstance(data, SurveySent):
            tenant_id = _tenant_uuid(event)
            invitations[(tenant_id, data.invitation_id)] = {
                "tenant_id": tenant_id,
                "invitation_id": data.invitation_id,
                "touchpoint": data.touchpoint,
                "sent_at": data.sent_at,
            }
        elif isinstance(data, SurveyResponded):
            tenant_id = _tenant_uuid(event)
            answers[(tenant_id, data.response_id)] = {
                "tenant_id": tenant_id,
                "response_id": data.response_id,
                "invitation_id": data.invitation_id,
                "touchpoint": data.touchpoint,
                "score": data.score,
                "responded_at": data.responded_at,
            }
        elif isinstance(data, FollowupOpened | FollowupUpdated):
            key = (_tenant_uuid(event), data.case_id)
            facts = _case_facts(data)
            cases[key] = merge(cases[key], facts) if key in cases else facts
        else:
            continue
        PROJECTED.labels(event.type).inc()
    await repository.record_invitations(uow.session, list(invitations.values()))
    await repository.record_responses(uow.session, list(answers.values()))
    await repository.merge_cases(uow.session, cases)


def _case_facts(data: FollowupOpened | FollowupUpdated) -> CaseFacts:
    if isinstance(data, FollowupOpened):
        return CaseFacts(
            status="open",
            breached=False,
            updated_at=data.opened_at,
            touchpoint=data.touchpoint,
            opened_at=data.opened_at,
            due_at=data.due_at,
        )
    return CaseFacts(status=data.status, breached=data.breached, updated_at=data.updated_at)
