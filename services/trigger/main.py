"""Composition root of the trigger service."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from libs.common import topics
from libs.common.db import UnitOfWork
from libs.common.events import Contract, Event
from libs.common.kafka import ConsumerSpec
from libs.common.service import ServiceDefinition
from services.trigger import api, handlers
from services.trigger.config import TriggerSettings
from services.trigger.handlers.bigcommerce import order_fetch_job
from services.trigger.handlers.erasure import on_erasure_completed
from services.trigger.handlers.recovery import on_recovery_due
from services.trigger.models import COMMON, Base
from services.trigger.repository import TriggerRepository


def build(settings: TriggerSettings) -> ServiceDefinition:
    async def intake(events: list[Event[Contract]], uow: UnitOfWork[TriggerRepository]) -> None:
        await handlers.handle_intake_from_kafka(events, uow, now=datetime.now(UTC), settings=settings)

    async def recoveries(events: list[Event[Contract]], uow: UnitOfWork[TriggerRepository]) -> None:
        await on_recovery_due(events, uow, now=datetime.now(UTC))

    return ServiceDefinition(
        name="trigger",
        title="NPS trigger",
        description="Decides who is asked for feedback, when, and records why not.",
        metadata=Base.metadata,
        tables=COMMON,
        repository=partial(TriggerRepository, privacy_hash_key=settings.privacy_hash_key.get_secret_value()),
        migrations=Path(__file__).parent / "migrations",
        routers=api.ROUTERS,
        consumers=[
            ConsumerSpec(
                name=handlers.INTAKE_CONSUMER,
                topics=[topics.PURCHASES, topics.TICKETS, topics.CUSTOMERS],
                handle=intake,
                allowed_types=handlers.ACCEPTED_TYPES,
                # The trigger owns the registry: a tenant it does not know does not exist.
                unknown_tenants="reject",
            ),
            ConsumerSpec(
                name="responses",
                topics=[topics.SURVEY_EVENTS],
                handle=handlers.on_survey_events,
                unknown_tenants="reject",
            ),
            ConsumerSpec(
                name="recoveries",
                topics=[topics.FOLLOWUPS],
                # The topic carries every case change; only recovery_due is the trigger's.
                handle=recoveries,
                unknown_tenants="reject",
            ),
            ConsumerSpec(
                name="erasures",
                # The other services' completions fill in the receipts; the requests are the trigger's own.
                topics=[topics.ERASURES],
                handle=on_erasure_completed,
                unknown_tenants="reject",
            ),
        ],
        jobs=[handlers.cohort_job(settings), order_fetch_job(settings)],
    )
