"""What an operator reads on /metrics about work waiting: the depth of the send queue, the
outbox and the notifier and the age of their oldest due item, and the case SLA gauges (unresolved,
due within the hour, breached now)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from services.alerting import handlers as alerting_handlers
from services.scoring.config import ScoringSettings
from services.scoring.main import build as build_scoring
from services.survey import handlers as survey_handlers
from tests.conftest import Mailbox, StartService, eventually, metric_value, provision_tenant
from tests.integration.test_alerting_followups import _alerting, _answer, _by_customer, _publish
from tests.integration.test_survey_flow import request_survey, survey_service, unique_address

pytestmark = pytest.mark.integration

SENDER = survey_handlers.SENDER_JOB


async def test_invitations_due_and_not_sent_show_as_the_send_queue_s_depth_and_age(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox, pg_url: str
) -> None:
    survey = await survey_service(start_service)
    tenant = await provision_tenant(survey.runtime)
    due_at = datetime.now(UTC) + timedelta(seconds=10)
    ids = [
        await request_survey(
            kafka_bootstrap,
            tenant,
            customer=f"c-{uuid.uuid4().hex[:8]}",
            email=unique_address(),
            send_at=due_at,
        )
        for _ in range(3)
    ]
    engine = create_async_engine(pg_url)
    try:
        async with engine.connect() as holder:

            async def scheduled() -> bool:
                found = await holder.scalar(
                    text(
                        "SELECT count(*) FROM survey.invitations "
                        "WHERE id = ANY(:ids) AND status = 'scheduled'"
                    ),
                    {"ids": ids},
                )
                await holder.rollback()
                return bool(found == len(ids))

            await eventually(scheduled, within=30)
            # Locked rows are skipped by every sender (SKIP LOCKED): due, and going nowhere, as when
            # a sender is stuck on them.
            await holder.execute(
                text("SELECT id FROM survey.invitations WHERE id = ANY(:ids) FOR UPDATE"), {"ids": ids}
            )

            async def queue() -> tuple[float, float] | None:
                depth = await metric_value(survey.client, "nps_survey_job_due_items", job=SENDER)
                age = await metric_value(survey.client, "nps_survey_job_oldest_due_age_seconds", job=SENDER)
                return (depth, age) if depth >= len(ids) and age >= 1 else None

            depth, age = await eventually(queue, within=40)
            assert depth >= 3
            assert age >= 1
            await holder.rollback()

        async def sent() -> bool:
            found = await metric_value(survey.client, "nps_survey_job_due_items", job=SENDER)
            return found == 0

        survey.runtime.jobs.wake(SENDER)
        await eventually(sent, within=30)
        assert await metric_value(survey.client, "nps_survey_job_oldest_due_age_seconds", job=SENDER) == 0
    finally:
        await engine.dispose()


@pytest.fixture
async def own_database(pg_url: str) -> AsyncIterator[str]:
    """A database of its own on the session's server: the SLA gauges count every tenant's cases,
    and the session's other tests open, breach and resolve cases of their own meanwhile."""
    database = f"alerting_gauges_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{database}"'))
    try:
        yield make_url(pg_url).set(database=database).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        await admin.dispose()


async def test_a_case_past_its_deadline_is_breached_now_and_one_due_soon_is_due_within_the_hour(
    start_service: StartService, kafka_bootstrap: str, own_database: str
) -> None:
    alerting = await _alerting(start_service, fresh=True, database_url=own_database)
    pg_url = own_database
    tenant = await provision_tenant(alerting.runtime)

    async def gauges() -> dict[str, float]:
        """The SLA gauges as this service's /metrics shows them. The gauges are process-wide and
        the session's shared alerting refreshes them from its own database every few seconds too
        (one process runs one alerting in production): refreshed here first, read at once."""
        async with alerting.runtime.database.uow() as uow:
            await alerting_handlers.refresh_open_cases(uow)
        return {name: await metric_value(alerting.client, name, priority="urgent") for name in names}

    names = (
        "nps_alerting_cases_unresolved",
        "nps_alerting_cases_due_within_hour",
        "nps_alerting_cases_breached_now",
    )

    async def empty() -> bool:
        # Another alerting of the session may refresh between this one's refresh and the read.
        return await gauges() == dict.fromkeys(names, 0)

    await eventually(empty, within=30)
    now = datetime.now(UTC)
    # Ten days ago: past every SLA time a new tenant's business hours give, whatever today is.
    forgotten = _answer(tenant, score=2, responded_at=now - timedelta(days=10))
    soon = _answer(tenant, score=1, responded_at=now - timedelta(minutes=1))
    await _publish(kafka_bootstrap, forgotten)
    await _publish(kafka_bootstrap, soon)
    cases = await eventually(lambda: _by_customer(alerting, tenant, 2), within=30)
    engine = create_async_engine(pg_url)
    try:
        async with engine.begin() as connection:
            # Whatever today's business hours say, this one's first contact is due in 30 minutes.
            await connection.execute(
                text(
                    "UPDATE alerting.followup_cases SET due_at = now() + interval '30 minutes' WHERE id = :id"
                ),
                {"id": uuid.UUID(cases[soon.data.customer_id]["id"])},
            )
    finally:
        await engine.dispose()

    async def moved() -> dict[str, float] | None:
        shown = await gauges()
        expected = {
            "nps_alerting_cases_unresolved": 2,
            "nps_alerting_cases_due_within_hour": 1,
            "nps_alerting_cases_breached_now": 1,
        }
        return shown if shown == expected else None

    await eventually(moved, within=30)

    resolved = await alerting.client.patch(
        f"/v1/cases/{cases[forgotten.data.customer_id]['id']}",
        json={"status": "resolved"},
        headers=tenant.headers,
    )
    assert resolved.status_code == 200, resolved.text

    async def breach_gone() -> bool:
        return (await gauges())["nps_alerting_cases_breached_now"] == 0

    await eventually(breach_gone, within=30)


async def test_an_event_the_relay_cannot_publish_shows_as_the_outbox_s_depth_and_age(
    start_service: StartService, pg_url: str
) -> None:
    scoring = await start_service(build_scoring, ScoringSettings)
    relay = {"job": "outbox-relay"}
    engine = create_async_engine(pg_url)
    event_id = f"stuck-{uuid.uuid4().hex}"
    try:
        async with engine.begin() as connection:
            # Larger than any producer request: the relay's every attempt fails, the event stays.
            await connection.execute(
                text(
                    "INSERT INTO scoring.outbox (event_id, event_type, topic, key, payload, created_at) "
                    "VALUES (:id, 'test.stuck.v1', 'nps.scores', NULL, :payload, now() - interval '1 minute')"
                ),
                {"id": event_id, "payload": b"x" * 2_000_000},
            )

        async def stuck() -> tuple[float, float] | None:
            depth = await metric_value(scoring.client, "nps_scoring_job_due_items", **relay)
            age = await metric_value(scoring.client, "nps_scoring_job_oldest_due_age_seconds", **relay)
            return (depth, age) if depth >= 1 and age >= 60 else None

        await eventually(stuck, within=30)
        assert await metric_value(scoring.client, "nps_scoring_outbox_pending") >= 1
    finally:
        async with engine.begin() as connection:
            await connection.execute(
                text("DELETE FROM scoring.outbox WHERE event_id = :id"), {"id": event_id}
            )
        await engine.dispose()

    async def moving() -> bool:
        return await metric_value(scoring.client, "nps_scoring_job_due_items", **relay) == 0

    await eventually(moving, within=30)


async def test_an_alert_email_due_and_not_sent_shows_as_the_notifier_s_depth_and_age(
    start_service: StartService, pg_url: str
) -> None:
    alerting = await _alerting(start_service)
    tenant = await provision_tenant(alerting.runtime)
    notifier = {"job": "notifier"}
    key = f"metrics-test:{uuid.uuid4().hex}"
    engine = create_async_engine(pg_url)
    try:
        async with engine.begin() as connection:
            # Queued as the handlers queue an email, due in a few seconds: time enough to hold it.
            await connection.execute(
                text(
                    "INSERT INTO alerting.notifications (tenant_id, kind, channel, recipient, dedup_key, "
                    "subject, body, attempts, next_attempt_at) VALUES (:tenant, 'digest', 'email', "
                    ":recipient, :key, 'Your digest', 'Nothing new.', 0, now() + interval '3 seconds')"
                ),
                {"tenant": uuid.UUID(tenant.tenant_id), "recipient": tenant.owner_email, "key": key},
            )
        async with engine.connect() as holder:
            # Held (locked), every notifier passes it by (SKIP LOCKED): due, and going nowhere.
            held = await holder.scalar(
                text("SELECT id FROM alerting.notifications WHERE dedup_key = :key FOR UPDATE"), {"key": key}
            )
            assert held is not None

            async def waiting() -> tuple[float, float] | None:
                depth = await metric_value(alerting.client, "nps_alerting_job_due_items", **notifier)
                age = await metric_value(
                    alerting.client, "nps_alerting_job_oldest_due_age_seconds", **notifier
                )
                return (depth, age) if depth >= 1 and age >= 1 else None

            await eventually(waiting, within=40)
            await holder.rollback()
    finally:
        await engine.dispose()

    async def sent() -> bool:
        return await metric_value(alerting.client, "nps_alerting_job_due_items", **notifier) == 0

    await eventually(sent, within=30)
