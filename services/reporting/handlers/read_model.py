"""Reporting's event handlers: they project events into the read model. They never commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

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
    is_recovery_answer,
)
from services.reporting.domain.case_days import case_changes
from services.reporting.domain.cases import CaseFacts, merge
from services.reporting.domain.funnel_days import MACHINE_OPENED, OPENED, NewStep, rollup_changes
from services.reporting.domain.rollups import DayKey, Tally, delta
from services.reporting.handlers import purchases
from services.reporting.models import InvitationFailure, InvitationSent, InvitationStep, Response
from services.reporting.repository import CaseKey, ReportingRepository

#: The funnel step each ``SurveyStep`` event type records.
STEP_OF_TYPE = {
    SURVEY_OPENED: "opened",
    SURVEY_CLICKED: "clicked",
    SURVEY_REMINDED: "reminded",
    SURVEY_BOUNCED: "bounced",
    SURVEY_UNSUBSCRIBED: "unsubscribed",
    SURVEY_EXPIRED: "expired",
}

#: ``survey.responded`` carries no revision: it is the first.
FIRST_REVISION = 1

PROJECTED = Counter(
    "nps_reporting_events_projected_total", "Events added to the read model, by type", ["type"]
)


async def project(events: list[Event[Contract]], uow: UnitOfWork[ReportingRepository]) -> None:
    """Add a batch of survey and follow-up events to the read model: one statement per table.

    Invitations and their funnel steps are facts that never change, so a repeat is simply ignored.
    An answer is kept in its highest revision: ``survey.responded`` is revision 1, and
    ``survey.response_updated`` repeats the whole answer with a higher one, so repeats and
    reordering leave the newest; the daily rollup of answers moves with it, by the difference
    between the version held before and the one stored. Cases are merged (see
    :mod:`services.reporting.domain.cases`) within the batch, then with what is stored; their
    rollups move by the difference between the versions held before and those stored.
    """
    batch = _Projection()
    for event in events:
        if batch.add(event):
            uow.count(PROJECTED.labels(event.type))
    await batch.save(uow.repository)


@dataclass
class _Projection:
    """A batch's rows, one per key, in the order first seen."""

    invitations: dict[tuple[uuid.UUID, uuid.UUID], InvitationSent] = field(default_factory=dict)
    steps: dict[tuple[uuid.UUID, uuid.UUID, str], InvitationStep] = field(default_factory=dict)
    failures: dict[tuple[uuid.UUID, uuid.UUID], InvitationFailure] = field(default_factory=dict)
    answers: dict[tuple[uuid.UUID, uuid.UUID], Response] = field(default_factory=dict)
    cases: dict[CaseKey, CaseFacts] = field(default_factory=dict)

    def add(self, event: Event[Contract]) -> bool:
        """Take one event into the batch; False if the read model keeps nothing of it."""
        data = event.data
        if isinstance(data, SurveyFailed):
            self._add_failure(event.tenant, data)
        elif isinstance(data, SurveySent):
            tenant_id = event.tenant
            self.invitations[(tenant_id, data.invitation_id)] = InvitationSent(
                tenant_id=tenant_id,
                invitation_id=data.invitation_id,
                touchpoint=data.touchpoint,
                sent_at=data.sent_at,
            )
        elif isinstance(data, SurveyStep) and event.type in STEP_OF_TYPE:
            step = (
                MACHINE_OPENED if event.type == SURVEY_OPENED and data.machine else STEP_OF_TYPE[event.type]
            )
            self._add_step(event.tenant, data.invitation_id, step, data.touchpoint, data.at)
        elif isinstance(data, SurveyResponded | SurveyResponseUpdated) and is_recovery_answer(data):
            # The recovery rate comes from the case (followup.updated); the NPS leaves it out.
            return True
        elif isinstance(data, SurveyResponded | SurveyResponseUpdated):
            key = (event.tenant, data.response_id)
            answer = _answer(key[0], data)
            # Of two versions in one batch the higher revision stays; on a tie, the first seen.
            if key not in self.answers or answer.revision > self.answers[key].revision:
                self.answers[key] = answer
        elif isinstance(data, FollowupOpened | FollowupUpdated):
            key = (event.tenant, data.case_id)
            facts = _case_facts(data)
            self.cases[key] = merge(self.cases[key], facts) if key in self.cases else facts
        else:
            return False
        return True

    def _add_failure(self, tenant_id: uuid.UUID, data: SurveyFailed) -> None:
        key = (tenant_id, data.invitation_id)
        if key not in self.failures:
            self.failures[key] = InvitationFailure(
                tenant_id=tenant_id,
                invitation_id=data.invitation_id,
                touchpoint=data.touchpoint,
                reason=data.reason,
                at=data.at,
            )
        self._add_step(tenant_id, data.invitation_id, "failed", data.touchpoint, data.at)

    def _add_step(
        self, tenant_id: uuid.UUID, invitation_id: uuid.UUID, step: str, touchpoint: str, at: datetime
    ) -> None:
        key = (tenant_id, invitation_id, step)
        if key not in self.steps:
            self.steps[key] = InvitationStep(
                tenant_id=tenant_id, invitation_id=invitation_id, step=step, touchpoint=touchpoint, at=at
            )

    async def save(self, repository: ReportingRepository) -> None:
        await self._save_funnel(repository)
        await purchases.lock_answers(repository, self.answers.values())
        stored = await _record_answers(repository, list(self.answers.values()))
        # The repurchase rollup moves once for both: the answers stored, then their repurchases found.
        found = await purchases.match_answers(repository, self.answers.values())
        await purchases.move_rollup(repository, [*stored, *found])
        await _record_cases(repository, self.cases)

    async def _save_funnel(self, repository: ReportingRepository) -> None:
        """The facts, then the rollup's rows they change: each fact counts when its insert added
        it, so a repeat (redelivered, replayed, or in an earlier batch) never counts twice."""
        invitations = await repository.record_invitations(list(self.invitations.values()))
        steps = [
            NewStep(step.tenant_id, step.invitation_id, step.touchpoint, step.step, step.at)
            for step in await repository.record_steps(list(self.steps.values()))
        ]
        failures = await repository.record_failures(list(self.failures.values()))
        # Whether a machine's open still counts depends on the invitation's other open: read after
        # this batch's insert. An invitation's events share the customer's key, so one consumer
        # at a time sees them, in order.
        opened = {(s.tenant_id, s.invitation_id) for s in steps if s.step in (OPENED, MACHINE_OPENED)}
        changes = rollup_changes(
            [(row.tenant_id, row.touchpoint, row.sent_at) for row in invitations],
            steps,
            [(row.tenant_id, row.touchpoint, row.reason, row.at) for row in failures],
            await repository.opens_of(opened),
        )
        await repository.add_to_funnel_days(changes)


async def _record_answers(
    repository: ReportingRepository, answers: list[Response]
) -> list[purchases.AnswerChange]:
    """Store the answers and move the daily rollup by what changed, in three statements: lock and
    read the versions held, upsert, add the deltas (see :mod:`services.reporting.domain.rollups`).
    Returns each answer stored as (tenant, held, stored) for the repurchase rollup."""
    held = await repository.held_answers([(answer.tenant_id, answer.response_id) for answer in answers])
    stored = await repository.record_responses(answers, held=held.keys())
    changes: dict[tuple[uuid.UUID, DayKey], Tally] = {}
    for (tenant_id, response_id), version in stored.items():
        for row, change in delta(held.get((tenant_id, response_id)), version).items():
            key = (tenant_id, row)
            changes[key] = changes.get(key, Tally()) + change
    await repository.add_to_answer_days({key: change for key, change in changes.items() if change})
    return [(key[0], held.get(key), version) for key, version in stored.items()]


async def _record_cases(repository: ReportingRepository, cases: dict[CaseKey, CaseFacts]) -> None:
    """Merge the cases and move their rollups by what changed: lock and read the versions held (one
    statement), upsert (one), add the deltas (one per rollup table that changes; see
    :mod:`services.reporting.domain.case_days`)."""
    held = await repository.held_cases(cases.keys())
    stored = await repository.merge_cases(cases, held=held.keys())
    changes = case_changes((key[0], held.get(key), version) for key, version in stored.items())
    await repository.add_to_case_rollups(changes)


def _answer(tenant_id: uuid.UUID, data: SurveyResponded | SurveyResponseUpdated) -> Response:
    """The answer's row, with the survey context's snapshot its segments are taken from."""
    context = data.context
    answer = Response(
        tenant_id=tenant_id,
        response_id=data.response_id,
        invitation_id=data.invitation_id,
        touchpoint=data.touchpoint,
        score=data.score,
        responded_at=data.responded_at,
        comment=data.comment,
        revision=FIRST_REVISION,
        recommended=None,
        csat=None,
        effort=None,
        updated_at=None,
        customer_id=data.customer_id,
        locale=context.locale if context else None,
        account_id=context.account_id if context else None,
        attributes=dict(context.attributes) if context else None,
        spend_12m=(
            [money.model_dump() for money in context.spend_12m] if context and context.spend_12m else None
        ),
    )
    if isinstance(data, SurveyResponseUpdated):
        answer.revision = data.revision
        answer.recommended = data.recommended
        answer.csat = data.csat
        answer.effort = data.effort
        answer.updated_at = data.updated_at
    return answer


def _case_facts(data: FollowupOpened | FollowupUpdated) -> CaseFacts:
    if isinstance(data, FollowupOpened):
        return CaseFacts(
            status="open",
            breached=False,
            updated_at=data.opened_at,
            touchpoint=data.touchpoint,
            opened_at=data.opened_at,
            due_at=data.due_at,
            response_id=data.response_id,
            priority=data.priority,
            assignee_name=data.assignee_name,
            team_name=data.team_name,
        )
    return CaseFacts(
        status=data.status,
        breached=data.breached,
        updated_at=data.updated_at,
        # An update from an emitter that sends the whole state places a case whose opening is late.
        touchpoint=data.touchpoint,
        opened_at=data.opened_at,
        priority=data.priority,
        assignee_name=data.assignee_name,
        team_name=data.team_name,
        contacted_at=data.contacted_at,
        seconds_to_contact=data.seconds_to_contact,
        contact_within_sla=data.contact_within_sla,
        resolved_at=data.resolved_at,
        seconds_to_resolution=data.seconds_to_resolution,
        root_cause=data.root_cause,
        recovery_score=data.recovery_score,
    )
