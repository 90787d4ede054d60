"""Composition root of the reporting service."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from libs.common import topics
from libs.common.db import UnitOfWork
from libs.common.erasure import erasure_consumer
from libs.common.events import Contract, ErasureRequested, Event
from libs.common.kafka import ConsumerSpec, dispatch_by_type
from libs.common.retention import RetentionJob
from libs.common.service import ServiceDefinition
from libs.common.sessions import session_handlers
from libs.common.tenancy import TENANCY_HANDLERS
from services.reporting import api
from services.reporting.api import stream
from services.reporting.config import ReportingSettings
from services.reporting.handlers import purchases, read_model, scores
from services.reporting.models import COMMON, SESSIONS, Base
from services.reporting.repository import ReportingRepository


async def erase_customer(
    uow: UnitOfWork[Any], tenant_id: uuid.UUID, request: ErasureRequested, now: datetime
) -> dict[str, int]:
    """Reporting's part of an erasure: the answers are anonymised, no count moves, so no score cell
    changes and the live stream has nothing to tell."""
    repository: ReportingRepository = uow.repository
    return await repository.erase_customer(tenant_id, request.customer_id)


def build(settings: ReportingSettings) -> ServiceDefinition:
    # Sessions too: a person signed in at the case desk opens the report with the same cookie.
    tenancy = dispatch_by_type({**TENANCY_HANDLERS, **session_handlers(SESSIONS)})

    async def consume(events: list[Event[Contract]], uow: UnitOfWork[ReportingRepository]) -> None:
        # Tenancy and the read model touch different tables, so their relative order does not
        # matter; the read model takes the batch whole to write each table once.
        await tenancy(events, uow)
        await read_model.project(events, uow)

    return ServiceDefinition(
        name="reporting",
        title="NPS reporting",
        description="A tenant's survey results at a glance: score, response rate and follow-up cases.",
        metadata=Base.metadata,
        tables=COMMON,
        repository=ReportingRepository,
        migrations=Path(__file__).parent / "migrations",
        routers=api.routers,
        sessions=SESSIONS,
        consumers=[
            ConsumerSpec(
                name="read-model",
                topics=[topics.SURVEY_EVENTS, topics.FOLLOWUPS, topics.TENANTS],
                handle=consume,
            ),
            # Cells only. Its events' tenants become known through the read model's consumer (the
            # registry on nps.tenants): a cell of a tenant not known yet is held by the runner and
            # handed over once that consumer has recorded the tenant, so this one need not read
            # nps.tenants and handle each tenancy event a second time.
            ConsumerSpec(name="scores", topics=[topics.SCORES], handle=scores.record),
            # Purchases, for the repurchase rate; their tenants become known as the cells' do.
            ConsumerSpec(
                name=purchases.PURCHASES_CONSUMER,
                topics=[topics.PURCHASES_RECORDED],
                handle=purchases.record,
            ),
            ConsumerSpec(
                name="erasures",
                topics=[topics.ERASURES],
                handle=erasure_consumer("reporting", erase_customer),
            ),
        ],
        jobs=[
            stream.listener,
            lambda runtime: RetentionJob(runtime.database, every=settings.retention_poll_seconds),
        ],
    )
