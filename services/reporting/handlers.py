"""Reporting's event handlers: they project events into the read model. They never commit."""

from __future__ import annotations

import uuid
from typing import Any

from prometheus_client import Counter

from libs.common.db import UnitOfWork
from libs.common.events import (
    SURVEY_BOUNCED,
    SURVEY_CLICKED,
    SURVEY_EXPIRED,
    SURVEY_OPENED,
    SURVEY_REMINDED,
    SURVEY_UNSUBSCRIBED,
    Contract,
    Event,
    FollowupOpened,
    FollowupUpdated,
    SurveyFailed,
    SurveyResponded,
    SurveyResponseUpdated,
    SurveySent,
    SurveyStep,
)
from services.reporting import repository
from services.reporting.domain.cases import CaseFacts, merge
from services.reporting.repository import CaseKey

#: The funnel step each ``SurveyStep`` event type records.
STEP_OF_TYPE = {
    SURVEY_OPENED: "opened",
    SURVEY_CLICKED: "clicked",
    SURVEY_REMINDED: "reminded",
    SURVEY_BOUNCED: "bounced",
    SURVEY_UNSUBSCRIBED: "unsubscribed",
    SURVEY_EXPIRED: "expired",
}
#: An open a machine made (Apple Mail Privacy Protection, a mail gateway): its own step, so the
#: funnel's "opened" counts people only.
MACHINE_OPENED = "machine_opened"

#: ``survey.responded`` carries no revision: it is the first.
FIRST_REVISION = 1

PROJECTED = Counter(
    "nps_reporting_events_projected_total", "Events added to the read model, by type", ["type"]
)


async def project(events: list[Event[Contract]], uow: UnitOfWork) -> None:
    """Add a batch of survey and follow-up events to the read model: one statement per table.

    Invitations and their funnel steps are facts that never change, so a repeat is simply ignored.
    An answer is kept in its highest revision: ``survey.responded`` is revision 1, and
    ``survey.response_updated`` repeats the whole answer with a higher one, so repeats and
    reordering leave the newest. Cases are merged (see :mod:`services.reporting.domain.cases`)
    within the batch, then with what is stored.
    """
    invitations: dict[tuple[uuid.UUID, uuid.UUID], dict[str, Any]] = {}
    steps: dict[tuple[uuid.UUID, uuid.UUID, str], dict[str, Any]] = {}
    answers: dict[tuple[uuid.UUID, uuid.UUID], dict[str, Any]] = {}
    cases: dict[CaseKey, CaseFacts] = {}
    failures: dict[tuple[uuid.UUID, uuid.UUID], dict[str, Any]] = {}
    for event in events:
        data = event.data
        if isinstance(data, SurveyFailed):
            tenant_id = event.tenant
            row = {"tenant_id": tenant_id, "invitation_id": data.invitation_id, "touchpoint": data.touchpoint}
            failures.setdefault(
                (tenant_id, data.invitation_id), {**row, "reason": data.reason, "at": data.at}
            )
            steps.setdefault(
                (tenant_id, data.invitation_id, "failed"), {**row, "step": "failed", "at": data.at}
            )
        elif isinstance(data, SurveySent):
            tenant_id = event.tenant
            invitations[(tenant_id, data.invitation_id)] = {
                "tenant_id": tenant_id,
                "invitation_id": data.invitation_id,
                "touchpoint": data.touchpoint,
                "sent_at": data.sent_at,
            }
        elif isinstance(data, SurveyStep) and event.type in STEP_OF_TYPE:
            tenant_id = event.tenant
            step = (
                MACHINE_OPENED if event.type == SURVEY_OPENED and data.machine else STEP_OF_TYPE[event.type]
            )
            steps.setdefault(
                (tenant_id, data.invitation_id, step),
                {
                    "tenant_id": tenant_id,
                    "invitation_id": data.invitation_id,
                    "step": step,
                    "touchpoint": data.touchpoint,
                    "at": data.at,
                },
            )
        elif isinstance(data, SurveyResponded | SurveyResponseUpdated):
            key = (event.tenant, data.response_id)
            answer = _answer_row(key[0], data)
            # Of two versions in one batch the higher revision stays; on a tie, the first seen.
            if key not in answers or answer["revision"] > answers[key]["revision"]:
                answers[key] = answer
        elif isinstance(data, FollowupOpened | FollowupUpdated):
            key = (event.tenant, data.case_id)
            facts = _case_facts(data)
            cases[key] = merge(cases[key], facts) if key in cases else facts
        else:
            continue
        PROJECTED.labels(event.type).inc()
    await repository.record_invitations(uow.session, list(invitations.values()))
    await repository.record_steps(uow.session, list(steps.values()))
    await repository.record_failures(uow.session, list(failures.values()))
    await repository.record_responses(uow.session, list(answers.values()))
    await repository.merge_cases(uow.session, cases)


def _answer_row(tenant_id: uuid.UUID, data: SurveyResponded | SurveyResponseUpdated) -> dict[str, Any]:
    row: dict[str, Any] = {
        "tenant_id": tenant_id,
        "response_id": data.response_id,
        "invitation_id": data.invitation_id,
        "touchpoint": data.touchpoint,
        "score": data.score,
        "responded_at": data.responded_at,
        "comment": data.comment,
    }
    if isinstance(data, SurveyResponded):
        return {
            **row,
            "revision": FIRST_REVISION,
            "recommended": None,
            "csat": None,
            "effort": None,
            "updated_at": None,
        }
    return {
        **row,
        "revision": data.revision,
        "recommended": data.recommended,
        "csat": data.csat,
        "effort": data.effort,
        "updated_at": data.updated_at,
    }


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
