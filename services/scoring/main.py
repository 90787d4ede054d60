"""Composition root of the scoring service."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from libs.common import topics
from libs.common.db import UnitOfWork
from libs.common.erasure import erasure_consumer
from libs.common.events import Contract, Event
from libs.common.kafka import ConsumerSpec, dispatch_by_type
from libs.common.service import ServiceDefinition
from libs.common.tenancy import TENANCY_HANDLERS
from services.scoring import api, handlers
from services.scoring.config import ScoringSettings
from services.scoring.gauges import ScoreGauges
from services.scoring.models import COMMON, Base
from services.scoring.repository import ScoringRepository


def build(settings: ScoringSettings) -> ServiceDefinition:
    tenancy = dispatch_by_type(TENANCY_HANDLERS)

    async def consume(events: list[Event[Contract]], uow: UnitOfWork[ScoringRepository]) -> None:
        # Tenancy and answers touch different tables, so their relative order does not matter;
        # answers and their revisions are handled as a whole batch: a few statements for all of it.
        await tenancy(events, uow)
        await handlers.record_responses(events, uow, now=datetime.now(UTC))

    return ServiceDefinition(
        name="scoring",
        title="NPS scoring",
        description="Counts survey answers into a Net Promoter Score per tenant and touchpoint.",
        metadata=Base.metadata,
        tables=COMMON,
        repository=ScoringRepository,
        migrations=Path(__file__).parent / "migrations",
        routers=[api.router],
        consumers=[
            ConsumerSpec(name="scores", topics=[topics.SURVEY_EVENTS, topics.TENANTS], handle=consume),
            ConsumerSpec(
                name="erasures",
                topics=[topics.ERASURES],
                handle=erasure_consumer("scoring", handlers.erase_customer),
            ),
        ],
        jobs=[
            lambda runtime: ScoreGauges(
                runtime.database,
                by_tenant=settings.metrics_tenant_labels,
                limit=settings.metrics_max_series,
                every=settings.metrics_refresh_seconds,
            )
        ],
    )
