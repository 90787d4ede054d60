"""Sending the emails the handlers queued. :func:`deliver_notifications` is the one handler that
talks to the mail server, so it owns its short transactions and holds none while it sends."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from prometheus_client import Counter

from libs.common.db import Database, UnitOfWork
from libs.common.jobs import claim_work_record
from libs.common.logs import redact
from libs.common.mail import DeliveryError
from services.alerting.domain import notices
from services.alerting.models import Notification
from services.alerting.repository import AlertingRepository, NotificationSent, NotificationUnsent

log = logging.getLogger(__name__)

NOTIFICATIONS = Counter(
    "nps_alerting_notifications_total", "Alert email delivery attempts, by outcome", ["kind", "outcome"]
)

Mailer = Callable[[EmailMessage], Awaitable[None]]


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
    sent: list[NotificationSent]
    unsent: list[NotificationUnsent]


async def deliver_notifications(
    database: Database[AlertingRepository],
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

    async def claim(uow: UnitOfWork[AlertingRepository]) -> Sequence[Notification]:
        return await uow.repository.claim_notifications(limit, lease)

    async def work(batch: Sequence[Notification]) -> _Outcomes:
        return await _send_all(batch, send=send, mail_from=mail_from, clock=clock)

    async def record(uow: UnitOfWork[AlertingRepository], outcomes: _Outcomes) -> None:
        await uow.repository.record_sent(outcomes.sent)
        await uow.repository.record_unsent(outcomes.unsent)

    return await claim_work_record(database, claim, work, record)


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
                outcomes.unsent.append(NotificationUnsent(notification.id, attempts, None, now, reason))
                outcome = "failed"
                log.error("notification.failed", extra={**fields, "error": reason})
            else:
                outcomes.unsent.append(
                    NotificationUnsent(notification.id, attempts, now + delay, None, reason)
                )
                outcome = "retry"
                log.warning(
                    "notification.retrying",
                    extra={**fields, "error": reason, "in_seconds": int(delay.total_seconds())},
                )
        else:
            outcomes.sent.append(NotificationSent(notification.id, clock()))
            outcome = "sent"
            log.info("notification.sent", extra={**fields, "case_id": str(notification.case_id)})
        NOTIFICATIONS.labels(notification.kind, outcome).inc()
    return outcomes
