"""Answers and their cases: hold an answer's newest version and keep its follow-up case in step
with it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import Counter

from libs.common.db import UnitOfWork
from libs.common.events import Event, FollowupOpened, SurveyContext, SurveyResponded, SurveyResponseUpdated
from libs.common.kafka import RejectEvent
from services.alerting.domain import notices
from services.alerting.domain.cases import CaseStatus
from services.alerting.domain.revisions import (
    FIRST_REVISION,
    CaseAction,
    CaseState,
    Resolution,
    case_action,
    is_newer,
    reopened_by_score_change,
    resolved_by_score_change,
)
from services.alerting.domain.sla import clock, priority_of
from services.alerting.handlers.chat import DEFAULT_DESK_URL, chat_notices
from services.alerting.handlers.common import (
    case_facts,
    case_id_for,
    emit_updated,
    event_id,
)
from services.alerting.handlers.recovery import record_recovery
from services.alerting.handlers.routing import place_case
from services.alerting.handlers.timeline import entry, opening_timeline, restart_clock, routing_facts
from services.alerting.handlers.timeline import place as _place
from services.alerting.models import Answer, FollowupCase
from services.alerting.repository import AlertingRepository, CaseNotice

log = logging.getLogger(__name__)
CASES_OPENED = Counter("nps_alerting_cases_opened_total", "Follow-up cases opened for detractors")
CASES_RESOLVED_BY_CUSTOMER = Counter(
    "nps_alerting_cases_resolved_by_score_change_total",
    "Cases resolved because the customer changed their score away from detractor",
)
CASES_UNASSIGNED = Counter(
    "nps_alerting_cases_unassigned_total", "Cases opened with nobody to tell: the tenant has no owner email"
)


@dataclass(frozen=True, slots=True)
class _Version:
    """One version of an answer as an event tells it: ``survey.responded`` (revision 1, with the
    customer's contact details) or ``survey.response_updated`` (the whole answer, without them)."""

    response_id: uuid.UUID
    invitation_id: uuid.UUID
    customer_id: str
    touchpoint: str
    revision: int
    score: int
    comment: str | None
    recommended: bool | None
    csat: int | None
    effort: int | None
    responded_at: datetime
    #: When the customer gave this version: the detractor clock starts here.
    given_at: datetime
    customer_email: str | None
    customer_name: str | None
    #: What the survey was about (order or ticket, account, attributes), and whether it was a
    #: recovery survey of a case.
    context: SurveyContext | None = None

    @property
    def recovery_of(self) -> uuid.UUID | None:
        """The case whose recovery survey this answers, if it is one."""
        context = self.context
        return context.recovery_case_id if context is not None and context.purpose == "recovery" else None

    @classmethod
    def of(cls, answer: SurveyResponded | SurveyResponseUpdated) -> _Version:
        if isinstance(answer, SurveyResponded):
            return cls(
                response_id=answer.response_id,
                invitation_id=answer.invitation_id,
                customer_id=answer.customer_id,
                touchpoint=answer.touchpoint,
                revision=FIRST_REVISION,
                score=answer.score,
                comment=answer.comment,
                recommended=None,
                csat=None,
                effort=None,
                responded_at=answer.responded_at,
                given_at=answer.responded_at,
                customer_email=answer.email,
                customer_name=answer.name,
                context=answer.context,
            )
        return cls(
            response_id=answer.response_id,
            invitation_id=answer.invitation_id,
            customer_id=answer.customer_id,
            touchpoint=answer.touchpoint,
            revision=answer.revision,
            score=answer.score,
            comment=answer.comment,
            recommended=answer.recommended,
            csat=answer.csat,
            effort=answer.effort,
            responded_at=answer.responded_at,
            given_at=answer.updated_at,
            customer_email=None,
            customer_name=None,
            context=answer.context,
        )

    def held(self, tenant_id: uuid.UUID, now: datetime) -> Answer:
        """This version as the first one held of its answer."""
        return Answer(
            response_id=self.response_id,
            tenant_id=tenant_id,
            invitation_id=self.invitation_id,
            customer_id=self.customer_id,
            customer_email=self.customer_email,
            customer_name=self.customer_name,
            touchpoint=self.touchpoint,
            revision=self.revision,
            score=self.score,
            comment=self.comment,
            recommended=self.recommended,
            csat=self.csat,
            effort=self.effort,
            responded_at=self.responded_at,
            updated_at=now,
            context=self.context.model_dump(mode="json") if self.context is not None else None,
        )


AnswerEvent = Event[SurveyResponded] | Event[SurveyResponseUpdated]


async def record_answers(
    events: Sequence[AnswerEvent],
    uow: UnitOfWork[AlertingRepository],
    *,
    now: datetime,
    notify_delay: timedelta = timedelta(0),
    desk_url: str = DEFAULT_DESK_URL,
) -> None:
    """:func:`record_answer` for each of a consumer batch's answers, in order, with a few queries for
    the whole batch rather than several for each answer: the repository reads the batch's answers,
    cases and tenants up front and writes what the batch adds together."""
    batch = [(event.tenant, event.data.response_id) for event in events]
    async with uow.repository.answer_batch(batch):
        for event in events:
            await record_answer(event, uow, now=now, notify_delay=notify_delay, desk_url=desk_url)


async def record_answer(
    event: AnswerEvent,
    uow: UnitOfWork[AlertingRepository],
    *,
    now: datetime,
    notify_delay: timedelta = timedelta(0),
    desk_url: str = DEFAULT_DESK_URL,
) -> None:
    """Hold the answer's newest version and keep its case in step with it: a detractor's answer
    opens one case, routed by the tenant's rules and emailed to whoever takes it, on the tenant's
    SLA clock; a score changed away from detractor resolves the case, and one changed to detractor
    opens it. A version not newer than the one held only fills in contact details still missing."""
    tenant_id = event.tenant
    version = _Version.of(event.data)
    held = await _held_version(uow, tenant_id, version, now)
    if version.recovery_of is not None:
        await _recovery_answer(uow, tenant_id, version, held, now)
        return
    case = await uow.repository.case_of_response(tenant_id, version.response_id)
    if held is not None and not is_newer(held.revision, version.revision):
        _keep_held(held, version, case, event.tenant_id)
        return
    previous_score = held.score if held is not None else None
    if held is not None:
        _hold(held, version, now)
    status = CaseStatus(case.status) if case is not None else None
    resolution = Resolution(case.resolution) if case is not None and case.resolution else None
    action = case_action(status, resolution, version.score)
    if action is CaseAction.OPEN:
        await _open_case(
            event.tenant_id,
            tenant_id,
            version,
            held,
            uow,
            now=now,
            notify_delay=notify_delay,
            desk_url=desk_url,
        )
        return
    if case is None:
        return
    await _refresh_case(case, action, version, held, uow, now=now, desk_url=desk_url)
    old_score = previous_score if previous_score is not None else case.score
    if action in (CaseAction.RESOLVE, CaseAction.REOPEN):
        await _follow_score_change(case, action, version, old_score, uow, now=now)


async def _recovery_answer(
    uow: UnitOfWork[AlertingRepository],
    tenant_id: uuid.UUID,
    version: _Version,
    held: Answer | None,
    now: datetime,
) -> None:
    """An answer to a case's recovery survey goes on that case, never opening one of its own."""
    if held is not None and not is_newer(held.revision, version.revision):
        return
    if held is not None:
        _hold(held, version, now)
    case_id = version.recovery_of
    case = await uow.repository.get_case(tenant_id, case_id, for_update=True) if case_id else None
    if case is None:
        log.warning("followup.recovery_unknown_case", extra={"tenant_id": str(tenant_id)})
        return
    await record_recovery(uow, case, version.score, version.revision, now)


async def _held_version(
    uow: UnitOfWork[AlertingRepository], tenant_id: uuid.UUID, version: _Version, now: datetime
) -> Answer | None:
    """The version held before this one, locked; ``None`` if this is the first, now held."""
    held = await uow.repository.lock_answer(version.response_id)
    if held is None and not await uow.repository.insert_answer(version.held(tenant_id, now)):
        # Another consumer recorded it since we looked; take its version as the one held.
        held = await uow.repository.lock_answer(version.response_id)
    return held


def _keep_held(held: Answer, version: _Version, case: FollowupCase | None, tenant_text: str) -> None:
    """A version not newer than the one held: it can only tell the contact details still missing."""
    if version.customer_email is not None and held.customer_email is None:
        _fill_contact(held, version, case)
    log.info(
        "answer.not_newer",
        extra={"tenant_id": tenant_text, "revision": version.revision, "held": held.revision},
    )


async def _refresh_case(
    case: FollowupCase,
    action: CaseAction,
    version: _Version,
    held: Answer | None,
    uow: UnitOfWork[AlertingRepository],
    *,
    now: datetime,
    desk_url: str,
) -> None:
    """Show the answer's current version on its case, and in the messages still waiting."""
    _show_answer(case, version, held)
    case.updated_at = now
    if action is CaseAction.RESOLVE:
        return
    # The "why" usually follows the score by a minute: the waiting email and chat messages carry it.
    waiting = await _opening_notices(uow, case, case.owner_email, desk_url)
    for queued in waiting:
        notice = queued.notice
        await uow.repository.rewrite_pending(
            case.id, notice.kind.value, subject=notice.subject, body=notice.body, channel=queued.channel
        )


async def _opening_notices(
    uow: UnitOfWork[AlertingRepository], case: FollowupCase, owner_email: str | None, desk_url: str
) -> list[CaseNotice]:
    """The case-opened email to its owner and the messages to its team's channels."""
    queued = []
    if owner_email is not None:
        facts = case_facts(case, desk_url)
        queued.append(CaseNotice(case.tenant_id, case.id, notices.case_opened(facts, owner_email)))
    team = (await uow.repository.people(case.tenant_id)).teams.get(case.team_id) if case.team_id else None
    title = f"New detractor case ({case.priority}): score {case.score}"
    queued.extend(chat_notices(case, team, notices.NoticeKind.CASE_OPENED, title, desk_url))
    return queued


async def _follow_score_change(
    case: FollowupCase,
    action: CaseAction,
    version: _Version,
    old_score: int,
    uow: UnitOfWork[AlertingRepository],
    *,
    now: datetime,
) -> None:
    """Resolve or reopen the case as the domain says a score change does, and tell the others."""
    if action is CaseAction.RESOLVE:
        _apply(
            case,
            resolved_by_score_change(_state(case), old_score=old_score, new_score=version.score, now=now),
        )
        await uow.repository.withdraw_pending(
            case.id,
            notices.NoticeKind.CASE_OPENED.value,
            "not sent: the customer changed the score before the email went out",
        )
        uow.count(CASES_RESOLVED_BY_CUSTOMER)
        case.next_check_at = None
    else:
        await _restart_clock(case, version, uow, old_score=old_score, now=now)
    await uow.repository.add_case_events(
        [
            entry(
                case,
                "score_changed",
                version.given_at,
                body=case.note,
                data={"from": old_score, "to": version.score, "status": case.status},
                dedup_key=f"revision:{version.revision}",
            )
        ]
    )
    # One change per revision at most, so the revision names it.
    emit_updated(uow, case, f"revision:{version.revision}", now)
    log.info(
        "followup.updated",
        extra={
            "case_id": str(case.id),
            "tenant_id": str(case.tenant_id),
            "status": case.status,
            "by": "score_change",
        },
    )


async def _restart_clock(
    case: FollowupCase,
    version: _Version,
    uow: UnitOfWork[AlertingRepository],
    *,
    old_score: int,
    now: datetime,
) -> None:
    """A case reopened by a detractor score again: the clock starts afresh from the new score, and
    every step may be taken again."""
    case.priority = priority_of(version.score).value
    times = await restart_clock(uow, case, version.given_at)
    reopened = reopened_by_score_change(
        _state(case), old_score=old_score, new_score=version.score, due_at=times.first_contact_due
    )
    _apply(case, reopened)
    # The job looks at once: the new score may have been given a while ago.
    case.next_check_at = now


def _state(case: FollowupCase) -> CaseState:
    return CaseState(
        status=CaseStatus(case.status),
        resolution=Resolution(case.resolution) if case.resolution else None,
        resolved_at=case.resolved_at,
        breached_at=case.breached_at,
        due_at=case.due_at,
        note=case.note,
    )


def _apply(case: FollowupCase, state: CaseState) -> None:
    case.status = state.status.value
    case.resolution = state.resolution.value if state.resolution is not None else None
    case.resolved_at = state.resolved_at
    case.breached_at = state.breached_at
    case.due_at = state.due_at
    case.note = state.note


def _fill_contact(held: Answer, version: _Version, case: FollowupCase | None) -> None:
    """``survey.responded`` came after a newer revision: keep the answer, learn the contact."""
    held.customer_email = version.customer_email
    held.customer_name = held.customer_name or version.customer_name
    if case is not None and case.customer_email is None:
        case.customer_email = version.customer_email
        case.customer_name = case.customer_name or version.customer_name


def _hold(held: Answer, version: _Version, now: datetime) -> None:
    held.revision = version.revision
    held.touchpoint = version.touchpoint
    held.score = version.score
    held.comment = version.comment
    held.recommended = version.recommended
    held.csat = version.csat
    held.effort = version.effort
    held.customer_email = held.customer_email or version.customer_email
    held.customer_name = held.customer_name or version.customer_name
    held.updated_at = now


def _show_answer(case: FollowupCase, version: _Version, held: Answer | None) -> None:
    case.score = version.score
    case.comment = version.comment
    case.recommended = version.recommended
    case.csat = version.csat
    case.effort = version.effort
    if case.customer_email is None and held is not None:
        case.customer_email = held.customer_email
        case.customer_name = case.customer_name or held.customer_name


async def _open_case(
    tenant_text: str,
    tenant_id: uuid.UUID,
    version: _Version,
    held: Answer | None,
    uow: UnitOfWork[AlertingRepository],
    *,
    now: datetime,
    notify_delay: timedelta = timedelta(0),
    desk_url: str = DEFAULT_DESK_URL,
) -> None:
    tenant = await uow.repository.tenant_info(tenant_id)
    if not tenant.known:
        # Never for a tenant that does not exist. The consumer holds a tenant's events until its
        # tenant.created has arrived, so this is a safety net, not the way a late tenant is handled.
        raise RejectEvent(f"tenantid: unknown tenant {tenant_text!r}")
    policy = await uow.repository.desk_policy(tenant_id)
    priority = priority_of(version.score)
    times = clock(version.given_at, priority, policy.sla)
    context = version.context or _held_context(held)
    placement = await place_case(
        uow,
        tenant_id,
        routing_facts(
            version.touchpoint,
            version.score,
            context.attributes if context else None,
            context.account_owner_email if context else None,
        ),
        policy=policy,
        owner_email=tenant.owner_email,
    )
    facts = _opening_facts(version, held, placement.routed.notify_email, times.first_contact_due, desk_url)
    case = _new_case(tenant_id, version, facts, now)
    _about(case, context)
    _place(case, placement, priority, times, policy, now)
    if not await uow.repository.insert_case(case):
        log.info("followup.duplicate_answer", extra={"case_id": str(facts.case_id), "tenant_id": tenant_text})
        return
    await uow.repository.add_case_events(opening_timeline(case, placement))
    uow.emit(
        _case_opened(version, facts, case),
        tenant_id=tenant_text,
        subject=str(facts.case_id),
        event_id=event_id(facts.case_id, "opened"),
        time=now,
    )
    await uow.repository.queue_notifications(
        await _opening_notices(uow, case, facts.owner_email, desk_url), after=notify_delay
    )
    if facts.owner_email is None:
        uow.count(CASES_UNASSIGNED)
    uow.count(CASES_OPENED)
    log.info(
        "followup.opened",
        extra={
            "case_id": str(facts.case_id),
            "tenant_id": tenant_text,
            "touchpoint": version.touchpoint,
            "score": version.score,
            "revision": version.revision,
            "assigned": facts.owner_email is not None,
        },
    )


def _held_context(held: Answer | None) -> SurveyContext | None:
    if held is None or held.context is None:
        return None
    return SurveyContext.model_validate(held.context)


def _about(case: FollowupCase, context: SurveyContext | None) -> None:
    """What the answer was about: the order or ticket, the account, the customer's attributes."""
    if context is None:
        case.attributes = {}
        return
    case.order_id = context.order_id
    case.ticket_id = context.ticket_id
    case.amount = context.amount
    case.currency = context.currency
    case.account_id = context.account_id
    case.account_owner_email = context.account_owner_email
    case.attributes = dict(context.attributes)


def _opening_facts(
    version: _Version, held: Answer | None, owner_email: str | None, due: datetime, desk_url: str
) -> notices.CaseFacts:
    """The new case as its owner's email tells it; contact details the held version knows fill in
    those this version lacks."""
    return notices.CaseFacts(
        case_id=case_id_for(version.response_id),
        customer_id=version.customer_id,
        customer_name=version.customer_name or (held.customer_name if held is not None else None),
        customer_email=version.customer_email or (held.customer_email if held is not None else None),
        touchpoint=version.touchpoint,
        score=version.score,
        comment=version.comment,
        opened_at=version.given_at,
        due_at=due,
        owner_email=owner_email,
        recommended=version.recommended,
        csat=version.csat,
        effort=version.effort,
        case_url=notices.case_url(desk_url, case_id_for(version.response_id)),
    )


def _new_case(
    tenant_id: uuid.UUID, version: _Version, facts: notices.CaseFacts, now: datetime
) -> FollowupCase:
    return FollowupCase(
        id=facts.case_id,
        tenant_id=tenant_id,
        response_id=version.response_id,
        invitation_id=version.invitation_id,
        customer_id=facts.customer_id,
        customer_email=facts.customer_email,
        customer_name=facts.customer_name,
        touchpoint=facts.touchpoint,
        score=facts.score,
        comment=facts.comment,
        recommended=facts.recommended,
        csat=facts.csat,
        effort=facts.effort,
        status=CaseStatus.OPEN.value,
        owner_email=facts.owner_email,
        opened_at=facts.opened_at,
        due_at=facts.due_at,
        updated_at=now,
    )


def _case_opened(version: _Version, facts: notices.CaseFacts, case: FollowupCase) -> FollowupOpened:
    return FollowupOpened(
        priority=case.priority,
        assignee_user_id=case.assignee_user_id,
        assignee_name=case.assignee_name,
        team_id=case.team_id,
        team_name=case.team_name,
        routing_reason=case.routing_reason,
        case_id=facts.case_id,
        response_id=version.response_id,
        invitation_id=version.invitation_id,
        customer_id=version.customer_id,
        touchpoint=version.touchpoint,
        score=version.score,
        owner_email=facts.owner_email,
        opened_at=facts.opened_at,
        due_at=facts.due_at,
    )
