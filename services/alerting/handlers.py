"""The alerting service's event handlers and commands. They load state, ask the domain, record the
changes, the outgoing events and the emails to send in the unit of work, and return. They never
commit; :func:`deliver_notifications` is the one that talks to the mail server, outside any
handler's transaction."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from prometheus_client import Counter, Gauge

from libs.common.db import UnitOfWork
from libs.common.events import (
    FOLLOWUP_OPENED,
    FOLLOWUP_UPDATED,
    Event,
    FollowupOpened,
    FollowupUpdated,
    SurveyResponded,
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
    is_detractor,
    transition,
)
from services.alerting.models import FollowupCase, Notification

log = logging.getLogger(__name__)

SOURCE = "/nps/alerting"
_CASE_NAMESPACE = uuid.UUID("0b7f4e1c-6a2d-4f0e-9c3b-8d5a1e2f7c64")

CASES_OPENED = Counter("nps_alerting_cases_opened_total", "Follow-up cases opened for detractors")
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


# --- Opening cases ------------------------------------------------------------------------------


async def open_followup(
    event: Event[SurveyResponded], uow: UnitOfWork, *, sla: timedelta, now: datetime
) -> None:
    """A detractor's answer opens one case, assigned to the tenant's owner, who is emailed."""
    answer = event.data
    if not is_detractor(answer.score):
        return
    try:
        tenant_id = uuid.UUID(event.tenant_id)
    except ValueError:
        raise RejectEvent(f"tenantid: {event.tenant_id!r} is not a tenant id") from None
    tenant = await repository.tenant_info(uow.session, tenant_id)
    if not tenant.known:
        # The tenant's own event may simply not have arrived yet; losing the case would be worse
        # than opening it unassigned.
        log.warning("followup.tenant_unknown", extra={"tenant_id": event.tenant_id})
    case_id = case_id_for(answer.response_id)
    facts = notices.CaseFacts(
        case_id=case_id,
        customer_id=answer.customer_id,
        customer_name=answer.name,
        customer_email=answer.email,
        touchpoint=answer.touchpoint,
        score=answer.score,
        comment=answer.comment,
        opened_at=answer.responded_at,
        due_at=due_at(answer.responded_at, sla),
        owner_email=tenant.owner_email,
    )
    created = await repository.insert_case(
        uow.session,
        {
            "id": case_id,
            "tenant_id": tenant_id,
            "response_id": answer.response_id,
            "invitation_id": answer.invitation_id,
            "customer_id": facts.customer_id,
            "customer_email": facts.customer_email,
            "customer_name": facts.customer_name,
            "touchpoint": facts.touchpoint,
            "score": facts.score,
            "comment": facts.comment,
            "status": CaseStatus.OPEN.value,
            "owner_email": facts.owner_email,
            "opened_at": facts.opened_at,
            "due_at": facts.due_at,
            "updated_at": now,
        },
    )
    if not created:
        log.info("followup.duplicate_answer", extra={"case_id": str(case_id), "tenant_id": event.tenant_id})
        return
    opened = FollowupOpened(
        case_id=case_id,
        response_id=answer.response_id,
        invitation_id=answer.invitation_id,
        customer_id=answer.customer_id,
        touchpoint=answer.touchpoint,
        score=answer.score,
        owner_email=facts.owner_email,
        opened_at=facts.opened_at,
        due_at=facts.due_at,
    )
    uow.emit(
        new_event(
            FOLLOWUP_OPENED,
            tenant_id=event.tenant_id,
            data=opened,
            subject=str(case_id),
            source=SOURCE,
            event_id=_event_id(case_id, "opened"),
            time=now,
        )
    )
    if facts.owner_email is not None:
        notice = notices.case_opened(facts, facts.owner_email)
        await repository.queue_notifications(uow.session, [_notification_row(tenant_id, case_id, notice)])
    else:
        CASES_UNASSIGNED.inc()
    CASES_OPENED.inc()
    log.info(
        "followup.opened",
        extra={
            "case_id": str(case_id),
            "tenant_id": event.tenant_id,
            "touchpoint": answer.touchpoint,
            "score": answer.score,
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
    cases = await repository.mark_breached(
        uow.session, now, statuses=[status.value for status in BREACHABLE_STATUSES], limit=limit
    )
    rows = []
    for case in cases:
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


async def deliver_notifications(
    uow: UnitOfWork, *, send: Mailer, mail_from: str, now: datetime, limit: int
) -> int:
    """Send a batch of due notifications and record how each went; returns how many were tried.

    The rows stay locked while they are sent, so no other notifier sends them too. A crash before
    the commit sends them again: at least once, never lost.
    """
    batch = await repository.claim_notifications(uow.session, limit)
    results = []
    for notification in batch:
        attempts = notification.attempts + 1
        result: dict[str, Any] = {
            "id": notification.id,
            "attempts": attempts,
            "sent_at": None,
            "failed_at": None,
            "last_error": None,
            "next_attempt_at": notification.next_attempt_at,
        }
        fields = {"notification_id": notification.id, "kind": notification.kind, "attempts": attempts}
        try:
            await send(_email(notification, mail_from))
        except DeliveryError as error:
            reason = redact(str(error))
            delay = None if error.permanent else notices.retry_delay(attempts)
            result["last_error"] = reason
            if delay is None:
                result["failed_at"] = now
                outcome = "failed"
                log.error("notification.failed", extra={**fields, "error": reason})
            else:
                result["next_attempt_at"] = now + delay
                outcome = "retry"
                log.warning(
                    "notification.retrying",
                    extra={**fields, "error": reason, "in_seconds": int(delay.total_seconds())},
                )
        else:
            result["sent_at"] = now
            outcome = "sent"
            log.info("notification.sent", extra={**fields, "case_id": str(notification.case_id)})
        NOTIFICATIONS.labels(notification.kind, outcome).inc()
        results.append(result)
    await repository.record_deliveries(uow.session, results)
    return len(batch)
