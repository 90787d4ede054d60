"""A full SLA batch: 1000 overdue cases, each with every step but the reminders due at once, are
taken in one pass (their 4000 timeline lines once went into one INSERT of more parameters than
Postgres takes, and the job failed on that batch for ever)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from services.alerting import handlers
from tests.conftest import ServiceUnderTest, StartService, eventually, metric_value, provision_tenant
from tests.integration.test_alerting_followups import _alerting

pytestmark = pytest.mark.integration

CASES = handlers.BREACH_BATCH

SEED = """
INSERT INTO alerting.followup_cases (
    id, tenant_id, response_id, invitation_id, customer_id, touchpoint, score, status, owner_email,
    priority, opened_at, due_at, resolution_due_at, updated_at, sla_done, next_check_at)
SELECT gen_random_uuid(), :tenant, gen_random_uuid(), gen_random_uuid(), 'customer-' || n, 'checkout', 2,
    'open', 'agent@shop.example', 'urgent', now() - interval '10 days', now() - interval '9 days',
    now() - interval '8 days', now() - interval '10 days', '{}', now() - interval '9 days'
FROM generate_series(1, :cases) AS n
"""


async def test_a_full_batch_of_overdue_cases_is_taken_in_one_pass(start_service: StartService) -> None:
    # The session's shared alerting (its SLA job checks at start, then hourly: the test drives it).
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    tenant_id = uuid.UUID(tenant.tenant_id)
    database = sut.runtime.database
    async with database.uow() as uow:
        await uow.session.execute(text(SEED), {"tenant": tenant_id, "cases": CASES})
        await uow.commit()

    async with database.uow() as uow:
        taken = await handlers.run_clock(uow, datetime.now(UTC))
        await uow.commit()

    # The breach, both escalations (nobody to tell at the team-lead level) and the resolution breach;
    # the service's own job may have started on them first (it checks once at start), never twice.
    assert taken <= 4 * CASES
    async with database.uow() as uow:
        left = await uow.session.scalar(
            text(
                "SELECT count(*) FROM alerting.followup_cases WHERE tenant_id = :tenant "
                "AND next_check_at <= now()"
            ),
            {"tenant": tenant_id},
        )
    assert left == 0
    counts = []
    async with database.uow() as uow:
        for table in ("case_events", "notifications"):
            query = text(f"SELECT count(*) FROM alerting.{table} WHERE tenant_id = :tenant")
            counts.append(await uow.session.scalar(query, {"tenant": tenant_id}))
    assert counts == [4 * CASES, 2 * CASES]
    # Its 2,000 emails would hold up the next tests' in the shared notifier's queue: not sent.
    async with database.uow() as uow:
        await uow.session.execute(
            text(
                "UPDATE alerting.notifications SET failed_at = now(), last_error = 'not sent: a test' "
                "WHERE tenant_id = :tenant AND sent_at IS NULL"
            ),
            {"tenant": tenant_id},
        )
        await uow.commit()


async def test_two_replicas_running_the_clock_at_once_take_each_step_once(
    start_service: StartService,
) -> None:
    first = await _alerting(start_service)
    cycles = await metric_value(first.client, "nps_alerting_job_runs_total", job="sla-check")
    # Another process's worth of alerting (its own pool and jobs) on the same database.
    second = await _alerting(start_service, fresh=True)

    # Its SLA job checks once at start (then hourly): had that check claimed the cases below, the
    # four clocks would skip them all and the counts be read before it commits.
    async def second_checked_once() -> bool:
        return await metric_value(first.client, "nps_alerting_job_runs_total", job="sla-check") > cycles

    await eventually(second_checked_once, within=30)
    tenant = await provision_tenant(first.runtime)
    tenant_id = uuid.UUID(tenant.tenant_id)
    cases = 300
    async with first.runtime.database.uow() as uow:
        await uow.session.execute(text(SEED), {"tenant": tenant_id, "cases": cases})
        await uow.commit()

    async def clock(replica: ServiceUnderTest) -> int:
        async with replica.runtime.database.uow() as uow:
            taken = await handlers.run_clock(uow, datetime.now(UTC))
            await uow.commit()
        return taken

    # Both replicas' SLA jobs firing together, twice over: the cases one holds, the other skips.
    await asyncio.gather(clock(first), clock(second), clock(first), clock(second))

    counts = []
    async with first.runtime.database.uow() as uow:
        for table in ("case_events", "notifications"):
            query = text(f"SELECT count(*) FROM alerting.{table} WHERE tenant_id = :tenant")
            counts.append(await uow.session.scalar(query, {"tenant": tenant_id}))
        repeated = await uow.session.scalar(
            text(
                "SELECT count(*) FROM (SELECT 1 FROM alerting.notifications WHERE tenant_id = :tenant "
                "GROUP BY case_id, kind, recipient HAVING count(*) > 1) AS twice"
            ),
            {"tenant": tenant_id},
        )
        await uow.session.execute(
            text(
                "UPDATE alerting.notifications SET failed_at = now(), last_error = 'not sent: a test' "
                "WHERE tenant_id = :tenant AND sent_at IS NULL"
            ),
            {"tenant": tenant_id},
        )
        await uow.commit()
    # The breach, both escalations and the resolution breach of each case, and its two notices,
    # once each: not once per replica. Two things see to it, the SKIP LOCKED claim of the cases and
    # the dedup keys of the steps and notices; the test passes with either one alone.
    assert counts == [4 * cases, 2 * cases]
    assert repeated == 0
