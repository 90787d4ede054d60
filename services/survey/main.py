"""Composition root of the survey service."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from libs.common import topics
from libs.common.db import UnitOfWork
from libs.common.erasure import erasure_consumer
from libs.common.events import Contract, ErasureRequested, Event
from libs.common.kafka import ConsumerSpec
from libs.common.retention import RetentionJob
from libs.common.service import ServiceDefinition
from services.survey import api, handlers
from services.survey.config import SurveySettings
from services.survey.handlers.erasure import erase_customer
from services.survey.models import COMMON, Base
from services.survey.repository import SurveyRepository
from services.survey.sender import reminders_job, sender_job


def build(settings: SurveySettings) -> ServiceDefinition:
    token_ttl = timedelta(days=settings.token_ttl_days)

    async def consume(events: list[Event[Contract]], uow: UnitOfWork[SurveyRepository]) -> None:
        await handlers.handle_consumed(
            events,
            uow,
            token_secret=settings.survey_token_secret.get_secret_value(),
            token_ttl=token_ttl,
            now=datetime.now(UTC),
            erasure_key=settings.privacy_hash_key.get_secret_value(),
        )

    async def erase(
        uow: UnitOfWork[Any], tenant_id: uuid.UUID, request: ErasureRequested, now: datetime
    ) -> dict[str, int]:
        return await erase_customer(
            uow, tenant_id, request, now, erasure_key=settings.privacy_hash_key.get_secret_value()
        )

    return ServiceDefinition(
        name="survey",
        title="NPS survey",
        description="Emails the survey invitations and records each person's one answer.",
        metadata=Base.metadata,
        tables=COMMON,
        repository=partial(SurveyRepository, privacy_hash_key=settings.privacy_hash_key.get_secret_value()),
        migrations=Path(__file__).parent / "migrations",
        routers=[
            api.public_router,
            api.settings_router,
            api.invitations_router,
            api.bounce_router,
            api.privacy_router,
        ],
        consumers=[
            ConsumerSpec(name="requests", topics=[topics.SURVEY_REQUESTS, topics.TENANTS], handle=consume),
            ConsumerSpec(name="erasures", topics=[topics.ERASURES], handle=erasure_consumer("survey", erase)),
        ],
        jobs=[
            sender_job(settings),
            reminders_job(settings),
            lambda runtime: RetentionJob(runtime.database, every=settings.retention_poll_seconds),
        ],
    )
