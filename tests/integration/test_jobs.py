"""The shared job runner in the running services: every job is measured, and a queue that waits
shows its age."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx

from libs.common.db import Database
from libs.common.outbox import OutboxRelay
from services.trigger.config import TriggerSettings
from services.trigger.main import build as build_trigger
from services.trigger.models import COMMON
from tests.conftest import StartService, eventually, metric_value
from tests.integration.test_alerting_followups import _alerting
from tests.integration.test_outbox import sent_events, unpublished
from tests.integration.test_survey_flow import survey_service


async def test_every_background_job_of_a_service_is_on_its_metrics_and_runs(
    start_service: StartService,
) -> None:
    # The services the other tests share, so that no second instance joins their consumer groups.
    expected = {
        "trigger": (
            await start_service(build_trigger, TriggerSettings),
            ["outbox-relay", "account-cohorts", "order-fetcher"],
        ),
        "survey": (
            await survey_service(start_service),
            ["outbox-relay", "survey-sender", "survey-reminders", "privacy-retention"],
        ),
        "alerting": (
            await _alerting(start_service),
            ["outbox-relay", "sla-check", "notifier", "privacy-retention"],
        ),
    }
    for service, (under_test, jobs) in expected.items():
        text = (await under_test.client.get("/metrics")).text
        for job in jobs:
            for metric in ("runs_total", "errors_total", "items_total", "oldest_due_age_seconds"):
                assert f'nps_{service}_job_{metric}{{job="{job}"}}' in text, (service, job, metric)
        # The jobs that poll within a second run over and over; their cycles are counted.
        polling = {"outbox-relay", "survey-sender", "notifier", "order-fetcher"}
        for job in polling & set(jobs):
            # Counters are process-wide: another test's service of the same name may have failed a
            # cycle (its database stopped on purpose); this one's cycles must add no error.
            errors = await metric_value(under_test.client, f"nps_{service}_job_errors_total", job=job)
            before = await metric_value(under_test.client, f"nps_{service}_job_runs_total", job=job)

            async def ran_again(
                client: httpx.AsyncClient = under_test.client,
                name: str = f"nps_{service}_job_runs_total",
                job: str = job,
                before: float = before,
            ) -> bool:
                return await metric_value(client, name, job=job) > before

            await eventually(ran_again)
            assert await metric_value(under_test.client, f"nps_{service}_job_errors_total", job=job) == errors


async def test_events_waiting_in_the_outbox_show_the_age_of_the_oldest(
    start_service: StartService, pg_url: str
) -> None:
    stopped = await start_service(build_trigger, TriggerSettings, fresh=True)
    await stopped.runtime.stop()
    database = Database(pg_url, COMMON)
    relay = OutboxRelay(database, stopped.runtime.producer, stopped.runtime.metrics)
    events = sent_events(str(uuid.uuid4()), 2)
    written = datetime.now(UTC)
    try:
        async with database.uow() as uow:
            for event in events:
                uow.emit(event)
            await uow.commit()
        oldest = await relay.oldest_due()
        assert oldest is not None
        # Nobody published them, so they are waiting: the oldest is one of them or older still.
        assert oldest <= datetime.now(UTC)
        assert (oldest - written).total_seconds() < 5
        # A running relay publishes them, and then nothing is waiting.
        await start_service(build_trigger, TriggerSettings, fresh=True)

        async def published() -> bool:
            return await unpublished(database, [event.id for event in events]) == 0

        await eventually(published)

        async def nothing_waits() -> bool:
            return await relay.oldest_due() is None

        await eventually(nothing_waits)
    finally:
        await database.dispose()
