"""Composition root of the alerting service."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from libs.common import topics
from libs.common.db import Database, UnitOfWork
from libs.common.events import SURVEY_RESPONDED, SURVEY_RESPONSE_UPDATED, Event
from libs.common.jobs import Job
from libs.common.kafka import ConsumerSpec, dispatch_by_type
from libs.common.mail import SmtpTarget, send_email
from libs.common.service import ServiceDefinition
from libs.common.tenancy import TENANCY_HANDLERS
from services.alerting import api, handlers
from services.alerting.config import AlertingSettings
from services.alerting.domain.cases import BREACHABLE_STATUSES
from services.alerting.models import COMMON, SESSIONS, Base
from services.alerting.repository import AlertingRepository

log = logging.getLogger(__name__)

SMTP_TIMEOUT_SECONDS = 15.0


def _record_answer(
    settings: AlertingSettings,
) -> Callable[[Event[Any], UnitOfWork[AlertingRepository]], Awaitable[None]]:
    sla = settings.followup_sla
    notify_delay = timedelta(seconds=settings.notify_delay_seconds)

    async def answered(event: Event[Any], uow: UnitOfWork[AlertingRepository]) -> None:
        await handlers.record_answer(
            event,
            uow,
            sla=sla,
            now=datetime.now(UTC),
            notify_delay=notify_delay,
            desk_url=settings.desk_public_url,
        )

    return answered


class SlaCheck(Job):
    """Stamp the cases nobody contacted in time and escalate them; refresh the open-cases gauge."""

    name = "sla-check"
    batch_size = handlers.BREACH_BATCH

    def __init__(self, database: Database[AlertingRepository], settings: AlertingSettings) -> None:
        self._database = database
        self._escalation_email = settings.escalation_email
        self._desk_url = settings.desk_public_url
        self.every = settings.sla_check_seconds

    async def run_once(self) -> int:
        async with self._database.uow() as uow:
            breached = await handlers.mark_breached(
                uow, datetime.now(UTC), escalation_email=self._escalation_email, desk_url=self._desk_url
            )
            await uow.commit()
        async with self._database.uow() as uow:
            await handlers.refresh_open_cases(uow)
        return breached

    async def oldest_due(self) -> datetime | None:
        async with self._database.uow() as uow:
            return await uow.repository.oldest_unbreached_due(
                datetime.now(UTC), statuses=[status.value for status in BREACHABLE_STATUSES]
            )


class Notifier(Job):
    """Send the notifications the handlers queued: claimed for a lease, sent with no transaction
    open, recorded after (handlers.deliver_notifications)."""

    name = "notifier"

    def __init__(self, database: Database[AlertingRepository], settings: AlertingSettings) -> None:
        self._database = database
        self._smtp = SmtpTarget.from_url(settings.smtp_url)
        self._mail_from = settings.mail_from
        self.batch_size = settings.notify_batch_size
        self.every = settings.notify_poll_seconds
        # Longer than the batch can take even if every message waits out the SMTP timeout.
        self._lease = timedelta(seconds=SMTP_TIMEOUT_SECONDS * settings.notify_batch_size + 60)

    async def _send(self, message: EmailMessage) -> None:
        await send_email(self._smtp, message, timeout_seconds=SMTP_TIMEOUT_SECONDS)

    async def run_once(self) -> int:
        return await handlers.deliver_notifications(
            self._database,
            send=self._send,
            mail_from=self._mail_from,
            limit=self.batch_size,
            lease=self._lease,
        )

    async def oldest_due(self) -> datetime | None:
        async with self._database.uow() as uow:
            return await uow.repository.oldest_notification_due()


def build(settings: AlertingSettings) -> ServiceDefinition:
    answered = _record_answer(settings)
    return ServiceDefinition(
        name="alerting",
        title="NPS alerting",
        description="Opens a follow-up case for every detractor, tells the owner, and escalates "
        "cases nobody contacted in time.",
        metadata=Base.metadata,
        tables=COMMON,
        repository=AlertingRepository,
        migrations=Path(__file__).parent / "migrations",
        routers=api.ROUTERS,
        sessions=SESSIONS,
        consumers=[
            ConsumerSpec(
                name="followups",
                topics=[topics.SURVEY_EVENTS, topics.TENANTS],
                handle=dispatch_by_type(
                    {SURVEY_RESPONDED: answered, SURVEY_RESPONSE_UPDATED: answered, **TENANCY_HANDLERS}
                ),
            )
        ],
        jobs=[
            lambda runtime: SlaCheck(runtime.database, settings),
            lambda runtime: Notifier(runtime.database, settings),
        ],
    )
