"""Composition root of the alerting service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from libs.common import topics
from libs.common.db import UnitOfWork
from libs.common.events import SURVEY_RESPONDED, SURVEY_RESPONSE_UPDATED, Event
from libs.common.kafka import ConsumerSpec, dispatch_by_type, is_transient
from libs.common.mail import SmtpTarget, send_email
from libs.common.service import Runtime, ServiceDefinition
from libs.common.tenancy import TENANCY_HANDLERS
from services.alerting import api, handlers
from services.alerting.config import AlertingSettings
from services.alerting.models import COMMON, Base
from services.alerting.repository import AlertingRepository

log = logging.getLogger(__name__)

SMTP_TIMEOUT_SECONDS = 15.0


async def _repeat(name: str, step: Callable[[], Awaitable[float]]) -> None:
    """Run ``step`` forever, waiting the seconds it returns between runs. A database or mail server
    that is away is waited out here; anything else reaches the runtime's supervisor."""
    delay = 0.5
    while True:
        try:
            pause = await step()
            delay = 0.5
        except Exception as error:
            if not is_transient(error):
                raise
            log.warning("loop.retrying", extra={"loop": name, "error": repr(error)[:300]})
            pause = delay
            delay = min(delay * 2, 10.0)
        if pause > 0:
            await asyncio.sleep(pause)


Loop = Callable[[Runtime], Awaitable[None]]


def _record_answer(
    settings: AlertingSettings,
) -> Callable[[Event[Any], UnitOfWork[AlertingRepository]], Awaitable[None]]:
    sla = settings.followup_sla
    notify_delay = timedelta(seconds=settings.notify_delay_seconds)

    async def answered(event: Event[Any], uow: UnitOfWork[AlertingRepository]) -> None:
        await handlers.record_answer(event, uow, sla=sla, now=datetime.now(UTC), notify_delay=notify_delay)

    return answered


def _sla_check(settings: AlertingSettings) -> Loop:
    async def check_sla(runtime: Runtime) -> None:
        async def step() -> float:
            async with runtime.database.uow() as uow:
                breached = await handlers.mark_breached(
                    uow, datetime.now(UTC), escalation_email=settings.escalation_email
                )
                await uow.commit()
            if breached >= handlers.BREACH_BATCH:
                return 0
            async with runtime.database.uow() as uow:
                await handlers.refresh_open_cases(uow)
            return settings.sla_check_seconds

        await _repeat("sla-check", step)

    return check_sla


def _notifier(settings: AlertingSettings) -> Loop:
    smtp = SmtpTarget.from_url(settings.smtp_url)
    # Longer than the batch can take even if every message waits out the SMTP timeout.
    lease = timedelta(seconds=SMTP_TIMEOUT_SECONDS * settings.notify_batch_size + 60)

    async def send(message: EmailMessage) -> None:
        await send_email(smtp, message, timeout_seconds=SMTP_TIMEOUT_SECONDS)

    async def notify(runtime: Runtime) -> None:
        async def step() -> float:
            tried = await handlers.deliver_notifications(
                runtime.database,
                send=send,
                mail_from=settings.mail_from,
                limit=settings.notify_batch_size,
                lease=lease,
            )
            return 0 if tried >= settings.notify_batch_size else settings.notify_poll_seconds

        await _repeat("notifier", step)

    return notify


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
        routers=[api.router],
        consumers=[
            ConsumerSpec(
                name="followups",
                topics=[topics.SURVEY_EVENTS, topics.TENANTS],
                handle=dispatch_by_type(
                    {SURVEY_RESPONDED: answered, SURVEY_RESPONSE_UPDATED: answered, **TENANCY_HANDLERS}
                ),
            )
        ],
        loops=[("sla-check", _sla_check(settings)), ("notifier", _notifier(settings))],
    )
