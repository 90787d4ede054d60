"""Composition root of the alerting service."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx

from libs.common import topics
from libs.common.db import Database, UnitOfWork
from libs.common.erasure import erasure_consumer
from libs.common.events import SURVEY_RESPONDED, SURVEY_RESPONSE_UPDATED, Contract, Event
from libs.common.jobs import Due, Job
from libs.common.kafka import BatchHandler, ConsumerSpec, dispatch_by_type
from libs.common.mail import SmtpTarget, send_email, smtp_histogram
from libs.common.retention import RetentionJob
from libs.common.service import ServiceDefinition
from libs.common.tenancy import TENANCY_HANDLERS
from services.alerting import api, handlers
from services.alerting.config import AlertingSettings
from services.alerting.handlers import chat, digest, recovery, webhooks
from services.alerting.handlers.erasure import erase_customer
from services.alerting.models import COMMON, SESSIONS, Base
from services.alerting.repository import AlertingRepository

log = logging.getLogger(__name__)

SMTP_TIMEOUT_SECONDS = 15.0


ANSWER_TYPES = frozenset({SURVEY_RESPONDED, SURVEY_RESPONSE_UPDATED})


def _followups(settings: AlertingSettings) -> BatchHandler:
    """The followups consumer's batch handler: each run of answers in a batch is recorded together
    (a few queries for the run, not several an answer), the registry's events one by one, in order."""
    notify_delay = timedelta(seconds=settings.notify_delay_seconds)
    registry = dispatch_by_type(TENANCY_HANDLERS)

    async def record(answers: list[Event[Any]], uow: UnitOfWork[AlertingRepository]) -> None:
        await handlers.record_answers(
            answers, uow, now=datetime.now(UTC), notify_delay=notify_delay, desk_url=settings.desk_public_url
        )

    async def handle(events: list[Event[Contract]], uow: UnitOfWork[Any]) -> None:
        answers: list[Event[Any]] = []
        for event in events:
            if event.type in ANSWER_TYPES:
                answers.append(event)
                continue
            if answers:
                await record(answers, uow)
                answers = []
            await registry([event], uow)
        if answers:
            await record(answers, uow)

    return handle


class SlaCheck(Job):
    """Take the SLA clock's steps that came due (reminders, breaches, escalations); with the due
    count, refresh the SLA gauges. Only cases whose next step is due are loaded (``next_check_at``)."""

    name = "sla-check"
    batch_size = handlers.BREACH_BATCH

    def __init__(self, database: Database[AlertingRepository], settings: AlertingSettings) -> None:
        self._database = database
        self._desk_url = settings.desk_public_url
        self.every = settings.sla_check_seconds

    async def run_once(self) -> int:
        async with self._database.uow() as uow:
            taken = await handlers.run_clock(uow, datetime.now(UTC), desk_url=self._desk_url)
            await uow.commit()
        return taken

    async def due(self) -> Due:
        # The SLA gauges ride on the runner's due clock (every few seconds, whatever the check's
        # interval): an operator sees a breach within seconds of its deadline.
        async with self._database.uow() as uow:
            now = datetime.now(UTC)
            await handlers.refresh_open_cases(uow, now)
            return await uow.repository.clock_queue(now)


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
        lease = settings.notify_lease_seconds or SMTP_TIMEOUT_SECONDS * settings.notify_batch_size + 60
        self._lease = timedelta(seconds=lease)

    async def _send(self, message: EmailMessage) -> None:
        await send_email(
            self._smtp, message, timeout_seconds=SMTP_TIMEOUT_SECONDS, timing=smtp_histogram("alerting")
        )

    async def run_once(self) -> int:
        return await handlers.deliver_notifications(
            self._database,
            send=self._send,
            mail_from=self._mail_from,
            limit=self.batch_size,
            lease=self._lease,
        )

    async def due(self) -> Due:
        async with self._database.uow() as uow:
            return await uow.repository.notification_queue()


class RecoveryRequests(Job):
    """Request the recovery survey of resolved cases whose day has come."""

    name = "recovery-requests"
    batch_size = recovery.RECOVERY_BATCH

    def __init__(self, database: Database[AlertingRepository], settings: AlertingSettings) -> None:
        self._database = database
        self.every = settings.sla_check_seconds

    async def run_once(self) -> int:
        async with self._database.uow() as uow:
            requested = await recovery.request_recoveries(uow, datetime.now(UTC))
            await uow.commit()
        return requested

    async def due(self) -> Due:
        async with self._database.uow() as uow:
            return await uow.repository.recovery_queue(datetime.now(UTC))


class Digests(Job):
    """Each tenant's daily digest, at its digest hour; checked every few minutes, sent once a day
    (the notifications' key is person and local date)."""

    name = "digests"

    def __init__(self, database: Database[AlertingRepository], settings: AlertingSettings) -> None:
        self._database = database
        self._desk_url = settings.desk_public_url
        self.every = settings.digest_check_seconds
        #: When each tenant's last digest was queued by this process: it looks again a day later.
        self._done: dict[uuid.UUID, datetime] = {}

    async def run_once(self) -> int:
        now = datetime.now(UTC)
        queued = 0
        async with self._database.uow() as uow:
            tenants = await uow.repository.tenants_with_people()
        for tenant_id in tenants:
            if tenant_id in self._done and now - self._done[tenant_id] < timedelta(hours=20):
                continue
            async with self._database.uow() as uow:
                day = await digest.queue_digests(uow, tenant_id, now, self._desk_url)
                await uow.commit()
            if day is not None:
                self._done[tenant_id] = now
                queued += 1
        return queued


class ChatNotifier(Job):
    """Post the Slack and Teams messages the handlers queued, concurrently, each within a timeout:
    a job of its own, so a slow webhook never holds up the emails."""

    name = "chat-notifier"

    def __init__(self, database: Database[AlertingRepository], settings: AlertingSettings) -> None:
        self._database = database
        self.batch_size = settings.notify_batch_size
        self.every = settings.notify_poll_seconds
        self._lease = timedelta(seconds=chat.TIMEOUT_SECONDS * 2 + 60)
        self._allow_private = settings.outbound_allow_private
        self._client = httpx.AsyncClient()

    async def run_once(self) -> int:
        return await chat.deliver_chat(
            self._database,
            self._client,
            limit=self.batch_size,
            lease=self._lease,
            allow_private=self._allow_private,
        )

    async def drain(self) -> None:
        await self._client.aclose()

    async def due(self) -> Due:
        async with self._database.uow() as uow:
            return await uow.repository.notification_queue(channels=chat.CHANNELS)


class WebhookSender(Job):
    """Post the outbound webhook deliveries that are due, concurrently, each within its timeout
    (services/alerting/handlers/webhooks.py): a job of its own, so a slow endpoint holds up
    neither the emails nor the chat messages."""

    name = "webhook-sender"

    def __init__(self, database: Database[AlertingRepository], settings: AlertingSettings) -> None:
        self._database = database
        self.batch_size = settings.webhook_batch_size
        self.every = settings.notify_poll_seconds
        self._options = webhooks.SenderOptions(
            limit=settings.webhook_batch_size,
            lease=timedelta(seconds=settings.webhook_lease_seconds),
            allow_private=settings.outbound_allow_private,
        )
        self._client = httpx.AsyncClient()

    async def run_once(self) -> int:
        return await webhooks.deliver_webhooks(self._database, self._client, self._options)

    async def drain(self) -> None:
        await self._client.aclose()

    async def due(self) -> Due:
        async with self._database.uow() as uow:
            return await uow.repository.webhook_queue()


async def _queue_webhooks(events: list[Event[Contract]], uow: UnitOfWork[Any]) -> None:
    await webhooks.queue_webhooks(events, uow)


def build(settings: AlertingSettings) -> ServiceDefinition:
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
                handle=_followups(settings),
            ),
            # A group of its own: its claims (processed events) and its offsets are apart from the
            # cases', so a slow or new webhook consumer never holds up follow-ups.
            ConsumerSpec(
                name="webhooks",
                topics=[topics.SURVEY_EVENTS, topics.FOLLOWUPS, topics.SCORES],
                handle=_queue_webhooks,
            ),
            ConsumerSpec(
                name="erasures", topics=[topics.ERASURES], handle=erasure_consumer("alerting", erase_customer)
            ),
        ],
        jobs=[
            lambda runtime: SlaCheck(runtime.database, settings),
            lambda runtime: Notifier(runtime.database, settings),
            lambda runtime: ChatNotifier(runtime.database, settings),
            lambda runtime: RecoveryRequests(runtime.database, settings),
            lambda runtime: Digests(runtime.database, settings),
            lambda runtime: WebhookSender(runtime.database, settings),
            lambda runtime: RetentionJob(runtime.database, every=settings.retention_poll_seconds),
        ],
    )
