"""The alerting service's event handlers and commands. They load state, ask the domain, record the
changes, the outgoing events and the emails to send in the unit of work, and return. They never
commit; :func:`deliver_notifications` is the one that talks to the mail server, so it owns its short
transactions and holds none while it sends."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy import func

from libs.common.db import Database, UnitOfWork
from libs.common.events import (
    FOLLOWUP_OPENED,
    FOLLOWUP_UPDATED,
    Event,
    FollowupOpened,
    FollowupUpdated,
    SurveyResponded,
    SurveyResponseUpdated,
    new_event,
)
from libs.common.kafka import RejectEvent
from libs.common.logs import redact
from libs.common.mail import DeliveryError
from services.alerting import repository
from services.alerting.domain import notices
from services.alerting.domain.cases import (
    BREACHABLE_STATUSES,
    CaseStatus,
    due_at,
    is_breached,
    transition,
)
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
from services.alerting.models import Answer, FollowupCase, Notification

log = logging.getLogger(__name__)

SOURCE = "/nps/alerting"
_CASE_NAMESPACE = uuid.UUID("0b7f4e1c-6a2d-4f0e-9c3b-8d5a1e2f7c64")

CASES_OPENED = Counter("nps_alerting_cases_opened_total", "Follow-up cases opened for detractors")
CASES_RESOLVED_BY_CUSTOMER = Counter(
    "nps_alerting_cases_resolved_by_score_change_total",
    "Cases resolved because the customer changed their score away from detractor",
)
CASES_BREACHED = Counter(
    "nps_alerting_cases_breached_total", "Follow-up cases not contacted by their due time"
)
CASES_UNASSIGNED = Counter(
    "nps_alerting_cases_unassigned_total", "Cases opened with nobody to tell: the tenant has no owner email"
)
NOTIFICATIONS = Counter(
    "nps_alerting_notifications_total", "Alert email delivery attempts, by outcome", ["kind", "outcome"]
)
OPEN_CASES = Gauge("nps_alerting_open_cases", "Cases nobody has contacted yet, as of the last SLA check")

Mailer = Callable[[EmailMessage], Awaitable[None]]


def case_id_for(response_id: uuid.UUID) -> uuid.UUID:
    """Derived, not random: the same answer always maps to the same case."""
    return uuid.uuid5(_CASE_NAMESPACE, str(response_id))


def _event_id(case_id: uuid.UUID, change: str) -> str:
    # Each change happens at most once per case (a status is reached once, a breach stamped once),
    # so re-running the change re-emits the same event id and consumers drop the repeat.
    return str(uuid.uuid5(case_id, change))


def _facts(case: FollowupCase) -> notices.CaseFacts:
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
    )


def _notification_row(tenant_id: uuid.UUID, case_id: uuid.UUID, notice: notices.Notice) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "case_id": case_id,
        "kind": notice.kind.value,
        "recipient": notice.recipient,
        "subject": notice.subject,
        "body": notice.body,
        "attempts": 0,
    }


def _updated_event(case: FollowupCase, change: str, now: datetime) -> Event[Any]:
    data = FollowupUpdated(
        case_id=case.id, status=case.status, breached=case.breached_at is not None, updated_at=now
    )
    return new_event(
        FOLLOWUP_UPDATED,
        tenant_id=str(case.tenant_id),
        data=data,
        subject=str(case.id),
        source=SOURCE,
        event_id=_event_id(case.id, change),
        time=now,
    )


# --- Answers and their cases ----------------------------------------------------------------------


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
        )

    def answer_row(self, tenant_id: uuid.UUID, now: datetime) -> dict[str, Any]:
        return {
            "response_id": self.response_id,
            "tenant_id": tenant_id,
            "invitation_id": self.invitation_id,
            "customer_id": self.customer_id,
            "customer_email": self.customer_email,
            "customer_name": self.customer_name,
            "touchpoint": self.touchpoint,
            "revision": self.revision,
            "score": self.score,
            "comment": self.comment,
            "recommended": self.recommended,
            "csat": self.csat,
            "effort": self.effort,
            "responded_at": self.responded_at,
            "updated_at": now,
        }


async def record_answer(
    event: Event[SurveyResponded] | Event[SurveyResponseUpdated],
    uow: UnitOfWork,
    *,
    sla: timedelta,
    now: datetime,
    notify_delay: timedelta = timedelta(0),
) -> None:
    """Hold the answer's newest version and keep its case in step with it: a detractor's answer
    opens one case, assigned to the tenant's owner, who is emailed; a score changed away from
    detractor resolves the case, and one changed to detractor opens it. A version not newer than
    the one held only fills in contact details still missing."""
    try:
        tenant_id = uuid.UUID(event.tenant_id)
    except ValueError:
        raise RejectEvent(f"tenantid: {event.tenant_id!r} is not a tenant id") from None
    version = _Version.of(event.data)
    held = await repository.lock_answer(uow.session, version.response_id)
    if held is None and not await repository.insert_answer(uow.session, version.answer_row(tenant_id, now)):
        # Another consumer recorded it since we looked; take its version as the one held.
        held = await repository.lock_answer(uow.session, version.response_id)
    case = await repository.case_of_response(uow.session, tenant_id, version.response_id)
    if held is not None and not is_newer(held.revision, version.revision):
        if version.customer_email is not None and held.customer_email is None:
            _fill_contact(held, version, case)
        log.info(
            "answer.not_newer",
            extra={"tenant_id": event.tenant_id, "revision": version.revision, "held": held.revision},
        )
        return
    previous_score = held.score if held is not None else None
    if held is not None:
        _hold(held, version, now)
    status = CaseStatus(case.status) if case is not None else None
    resolution = Resolution(case.resolution) if case is not None and case.resolution else None
    action = case_action(status, resolution, version.score)
    if action is CaseAction.OPEN:
        await _open_case(
            event.tenant_id, tenant_id, version, held, uow, sla=sla, now=now, notify_delay=notify_delay
        )
        return
    if case is None:
        return
    _show_answer(case, version, held)
    case.updated_at = now
    if case.owner_email is not None and action is not CaseAction.RESOLVE:
        # The "why" usually follows the score by a minute: the waiting email carries it.
        notice = notices.case_opened(_facts(case), case.owner_email)
        await repository.rewrite_pending(
            uow.session, case.id, notice.kind.value, subject=notice.subject, body=notice.body
        )
    old_score = previous_score if previous_score is not None else case.score
    if action is CaseAction.RESOLVE:
        _apply(
            case,
            resolved_by_score_change(_state(case), old_score=old_score, new_score=version.score, now=now),
        )
        await repository.withdraw_pending(
            uow.session,
            case.id,
            notices.NoticeKind.CASE_OPENED.value,
            "not sent: the customer changed the score before the email went out",
        )
        CASES_RESOLVED_BY_CUSTOMER.inc()
    elif action is CaseAction.REOPEN:
        reopened = reopened_by_score_change(
            _state(case), old_score=old_score, new_score=version.score, given_at=version.given_at, sla=sla
        )
        _apply(case, reopened)
    if action in (CaseAction.RESOLVE, CaseAction.REOPEN):
        # One change per revision at most, so the revision names it.
        uow.emit(_updated_event(case, f"revision:{version.revision}", now))
        log.info(
            "followup.updated",
            extra={
                "case_id": str(case.id),
                "tenant_id": event.tenant_id,
                "status": case.status,
                "by": "score_change",
            },
        )


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
    uow: UnitOfWork,
    *,
    sla: timedelta,
    now: datetime,
    notify_delay: timedelta = timedelta(0),
) -> None:
    tenant = await repository.tenant_info(uow.session, tenant_id)
    if not tenant.known:
        # Never for a tenant that does not exist. The consumer holds a tenant's events until its
        # tenant.created has arrived, so this is a safety net, not the way a late tenant is handled.
        raise RejectEvent(f"tenantid: unknown tenant {tenant_text!r}")
    case_id = case_id_for(version.response_id)
    facts = notices.CaseFacts(
        case_id=case_id,
        customer_id=version.customer_id,
        customer_name=version.customer_name or (held.customer_name if held is not None else None),
        customer_email=version.customer_email or (held.customer_email if held is not None else None),
        touchpoint=version.touchpoint,
        score=version.score,
        comment=version.comment,
        opened_at=version.given_at,
        due_at=due_at(version.given_at, sla),
        owner_email=tenant.owner_email,
        recommended=version.recommended,
        csat=version.csat,
        effort=version.effort,
    )
    created = await repository.insert_case(
        uow.session,
        {
            "id": case_id,
            "tenant_id": tenant_id,
            "response_id": version.response_id,
            "invitation_id": version.invitation_id,
            "customer_id": facts.customer_id,
            "customer_email": facts.customer_email,
            "customer_name": facts.customer_name,
            "touchpoint": facts.touchpoint,
            "score": facts.score,
            "comment": facts.comment,
            "recommended": facts.recommended,
            "csat": facts.csat,
            "effort": facts.effort,
            "status": CaseStatus.OPEN.value,
            "owner_email": facts.owner_email,
            "opened_at": facts.opened_at,
            "due_at": facts.due_at,
            "updated_at": now,
        },
    )
    if not created:
        log.info("followup.duplicate_answer", extra={"case_id": str(case_id), "tenant_id": tenant_text})
        return
    opened = FollowupOpened(
        case_id=case_id,
        response_id=version.response_id,
        invitation_id=version.invitation_id,
        customer_id=version.customer_id,
        touchpoint=version.touchpoint,
        score=version.score,
        owner_email=facts.owner_email,
        opened_at=facts.opened_at,
        due_at=facts.due_at,
    )
    uow.emit(
        new_event(
            FOLLOWUP_OPENED,
            tenant_id=tenant_text,
            data=opened,
            subject=str(case_id),
            source=SOURCE,
            event_id=_event_id(case_id, "opened"),
            time=now,
        )
    )
    if facts.owner_email is not None:
        notice = notices.case_opened(facts, facts.owner_email)
        row = _notification_row(tenant_id, case_id, notice)
        # By the database's clock, which the notifier compares against.
        row["next_attempt_at"] = func.now() + notify_delay
        await repository.queue_notifications(uow.session, [row])
    else:
        CASES_UNASSIGNED.inc()
    CASES_OPENED.inc()
    log.info(
        "followup.opened",
        extra={
            "case_id": str(case_id),
            "tenant_id": tenant_text,
            "touchpoint": version.touchpoint,
            "score": version.score,
            "revision": version.revision,
            "assigned": facts.owner_email is not None,
        },
    )


# --- Changing a case ------------------------------------------------------------------------------


class CaseNotFound(Exception):
    pass


async def update_case(
    uow: UnitOfWork,
    *,
    tenant_id: uuid.UUID,
    case_id: uuid.UUID,
    status: CaseStatus,
    note: str | None,
    now: datetime,
) -> FollowupCase:
    """Move a case on (``InvalidTransition`` if the rules forbid it) and tell the others."""
    case = await repository.get_case(uow.session, tenant_id, case_id, for_update=True)
    if case is None:
        raise CaseNotFound(case_id)
    case.status = transition(CaseStatus(case.status), status).value
    if status is CaseStatus.CONTACTED:
        case.contacted_at = now
    elif status is CaseStatus.RESOLVED:
        case.resolved_at = now
        case.resolution = Resolution.HANDLED.value
    if note is not None:
        case.note = note
    case.updated_at = now
    uow.emit(_updated_event(case, f"status:{status.value}", now))
    log.info(
        "followup.updated",
        extra={"case_id": str(case_id), "tenant_id": str(tenant_id), "status": status.value},
    )
    return case


# --- The SLA ---------------------------------------------------------------------------------------

BREACH_BATCH = 1000


async def mark_breached(
    uow: UnitOfWork, now: datetime, *, escalation_email: str | None = None, limit: int = BREACH_BATCH
) -> int:
    """Stamp every case still open after its due time as breached (up to ``limit`` per call), tell
    the others, and queue an escalation to ``escalation_email``, or else the case's owner."""
    candidates = await repository.breach_candidates(
        uow.session, now, statuses=[status.value for status in BREACHABLE_STATUSES], limit=limit
    )
    cases = [case for case in candidates if is_breached(CaseStatus(case.status), case.due_at, now)]
    rows = []
    for case in cases:
        case.breached_at = now
        case.updated_at = now
        uow.emit(_updated_event(case, "breached", now))
        recipient = escalation_email or case.owner_email
        if recipient is None:
            log.warning("followup.breach_unnotified", extra={"case_id": str(case.id)})
            continue
        notice = notices.case_breached(_facts(case), recipient, now)
        rows.append(_notification_row(case.tenant_id, case.id, notice))
    await repository.queue_notifications(uow.session, rows)
    if cases:
        CASES_BREACHED.inc(len(cases))
        log.info("followup.breached", extra={"cases": len(cases)})
    return len(cases)


async def refresh_open_cases(uow: UnitOfWork) -> int:
    count = await repository.count_open_cases(uow.session)
    OPEN_CASES.set(count)
    return count


# --- Sending the emails -----------------------------------------------------------------------------


def _email(notification: Notification, mail_from: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = notification.recipient
    message["Subject"] = notification.subject
    message["Date"] = format_datetime(notification.created_at)
    # Stable per notification, so a re-send after a crash is recognisably the same message.
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "nps.localhost"
    message["Message-ID"] = f"<nps-alerting-{notification.id}@{domain}>"
    message["X-NPS-Case-Id"] = str(notification.case_id)
    message.set_content(notification.body)
    return message


#: How long a claimed notification is left to the notifier that claimed it before another may
#: send it: longer than the batch can take to send, so a slow mail server does not cause repeats.
DEFAULT_LEASE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class _Outcomes:
    sent: list[tuple[int, datetime]]
    unsent: list[tuple[int, int, datetime | None, datetime | None, str]]


async def deliver_notifications(
    database: Database,
    *,
    send: Mailer,
    mail_from: str,
    limit: int,
    lease: timedelta = DEFAULT_LEASE,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Send a batch of due notifications and record how each went; returns how many were tried.

    Three steps, so that no row is locked while the mail server takes its time: a short transaction
    claims the batch for ``lease`` and commits, the emails are sent with no transaction open, and
    another short transaction records the outcomes. A crash after the claim sends them again once
    the lease is over: at least once, never lost.
    """
    async with database.uow() as uow:
        batch = await repository.claim_notifications(uow.session, limit, lease)
        await uow.commit()
    if not batch:
        return 0
    outcomes = await _send_all(batch, send=send, mail_from=mail_from, clock=clock)
    async with database.uow() as uow:
        await repository.record_sent(uow.session, outcomes.sent)
        await repository.record_unsent(uow.session, outcomes.unsent)
        await uow.commit()
    return len(batch)


async def _send_all(
    batch: Sequence[Notification], *, send: Mailer, mail_from: str, clock: Callable[[], datetime]
) -> _Outcomes:
    outcomes = _Outcomes(sent=[], unsent=[])
    for notification in batch:
        # The claim spent the attempt.
        attempts = notification.attempts
        fields = {"notification_id": notification.id, "kind": notification.kind, "attempts": attempts}
        try:
            await send(_email(notification, mail_from))
        except DeliveryError as error:
            now = clock()
            reason = redact(str(error))
            delay = None if error.permanent else notices.retry_delay(attempts)
            if delay is None:
                outcomes.unsent.append((notification.id, attempts, None, now, reason))
                outcome = "failed"
                log.error("notification.failed", extra={**fields, "error": reason})
            else:
                outcomes.unsent.append((notification.id, attempts, now + delay, None, reason))
                outcome = "retry"
                log.warning(
                    "notification.retrying",
                    extra={**fields, "error": reason, "in_seconds": int(delay.total_seconds())},
                )
        else:
            outcomes.sent.append((notification.id, clock()))
            outcome = "sent"
            log.info("notification.sent", extra={**fields, "case_id": str(notification.case_id)})
        NOTIFICATIONS.labels(notification.kind, outcome).inc()
    return outcomes
