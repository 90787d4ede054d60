"""The machinery every service shows on /metrics: which build runs, how its database pool is used
(and who waits for it), and how long SMTP sends take."""

from __future__ import annotations

import asyncio
import platform
import uuid
from importlib import metadata

import pytest
from sqlalchemy import text

from services.scoring.config import ScoringSettings
from services.scoring.main import build as build_scoring
from tests.conftest import Mailbox, StartService, eventually, metric_value, provision_tenant
from tests.integration.test_survey_flow import email_to, request_survey, survey_service, unique_address

pytestmark = pytest.mark.integration


async def test_build_info_names_the_service_version_revision_and_python(start_service: StartService) -> None:
    scoring = await start_service(build_scoring, ScoringSettings)
    labels = {
        "service": "scoring",
        "version": metadata.version("nps-platform"),
        "revision": "unknown",  # NPS_REVISION is not set in the tests
        "python": platform.python_version(),
    }
    assert await metric_value(scoring.client, "nps_build_info", **labels) == 1


async def test_the_pool_shows_connections_in_use_and_a_task_waiting_for_one(
    start_service: StartService,
) -> None:
    # A pool of one (and one overflow): two held connections exhaust it.
    scoring = await start_service(build_scoring, ScoringSettings, fresh=True, database_pool_size=1)
    engine = scoring.runtime.database.engine
    before = await metric_value(scoring.client, "nps_scoring_db_pool_acquire_seconds_count")
    first = await engine.connect()
    second = await engine.connect()
    waiter: asyncio.Task[None] | None = None
    try:
        assert await metric_value(scoring.client, "nps_scoring_db_pool_connections_in_use") >= 2
        assert await metric_value(scoring.client, "nps_scoring_db_pool_overflow_connections") == 1
        assert await metric_value(scoring.client, "nps_scoring_db_pool_size") == 1

        async def third() -> None:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

        waiter = asyncio.create_task(third())

        async def waiting() -> bool:
            return await metric_value(scoring.client, "nps_scoring_db_pool_waiting") >= 1

        await eventually(waiting, within=10)
    finally:
        await second.close()
        await first.close()
    assert waiter is not None
    await asyncio.wait_for(waiter, 30)

    async def drained() -> bool:
        return await metric_value(scoring.client, "nps_scoring_db_pool_waiting") == 0

    await eventually(drained, within=30)
    assert await metric_value(scoring.client, "nps_scoring_db_pool_acquire_seconds_count") >= before + 3


async def test_an_invitation_sent_is_one_smtp_send_timed(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    survey = await survey_service(start_service)
    tenant = await provision_tenant(survey.runtime)
    sent = {"outcome": "sent"}
    before = await metric_value(survey.client, "nps_survey_smtp_send_seconds_count", **sent)
    address = unique_address()
    await request_survey(kafka_bootstrap, tenant, customer=f"c-{uuid.uuid4().hex[:8]}", email=address)
    await email_to(smtp_sink.directory, address)

    async def timed() -> bool:
        return await metric_value(survey.client, "nps_survey_smtp_send_seconds_count", **sent) >= before + 1

    await eventually(timed, within=20)
    assert await metric_value(survey.client, "nps_survey_smtp_send_seconds_sum", **sent) > 0
