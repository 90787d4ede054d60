"""End to end: kill -9 of alerting in the middle of its SLA pass (the escalations of thousands of
overdue cases, in batches of 1000) and of its recovery-survey requests, and the supervisor restarts
it. What an operator checks afterwards: no escalation recorded twice, no step or reminder lost, and
no customer asked for a recovery survey twice. Emails are at least once: a kill between the mail
server taking a message and the notifier recording it sends it again, a bounded few times."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from libs.devstack.smtp_sink import read_headers
from services.alerting.domain.sla import Step
from services.trigger.domain.recovery import recovery_invitation_id
from tests.conftest import eventually
from tests.support.stack import Stack, new_tenant, ready, stack_launcher, stop

#: Three batches of the SLA job (1000, 1000, 500), each of which it is killed in the middle of once.
OPEN_CASES = 2500
RESOLVED_CASES = 500
KILLS = 3
#: The notifier's default batch: what one kill can at most send again.
NOTIFY_BATCH_SIZE = 20
#: A case opened 10 days ago, urgent, never contacted: every step but the reminders is due.
STEPS = sorted(
    step.value
    for step in (Step.BREACH, Step.ESCALATE_TEAM_LEAD, Step.ESCALATE_CX_MANAGER, Step.RESOLUTION_BREACH)
)
CASE_OWNER = "agent@kill-test.example"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The SLA pass starts within a second of seeding; a killed notifier's claim is free again 5 s
    # later instead of after its production lease of minutes.
    env = {
        "SLA_CHECK_SECONDS": "1",
        "NOTIFY_BATCH_SIZE": str(NOTIFY_BATCH_SIZE),
        "NOTIFY_LEASE_SECONDS": "5",
    }
    launcher = stack_launcher(tmp_path_factory.mktemp("alerting-kill"), env=env)
    started = launcher.start()
    try:
        yield started
    finally:
        stop(launcher.processes)


@pytest.fixture(scope="module")
async def db(stack: Stack) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(stack.state()["database_url"])
    try:
        yield engine
    finally:
        await engine.dispose()


async def _rows(db: AsyncEngine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async with db.connect() as connection:
        return [tuple(row) for row in await connection.execute(text(sql), params)]


async def _count(db: AsyncEngine, sql: str, **params: Any) -> int:
    [(count,)] = await _rows(db, sql, **params)
    return int(count)


async def _tenant_in_alerting(db: AsyncEngine, owner_email: str) -> uuid.UUID | None:
    found = await _rows(db, "SELECT id FROM alerting.tenants WHERE owner_email = :owner", owner=owner_email)
    return found[0][0] if found else None


SEED_OPEN = """
INSERT INTO alerting.followup_cases (
    id, tenant_id, response_id, invitation_id, customer_id, customer_email, touchpoint, score, status,
    owner_email, priority, opened_at, due_at, resolution_due_at, updated_at, sla_done, next_check_at)
SELECT gen_random_uuid(), :tenant, gen_random_uuid(), gen_random_uuid(), 'open-' || n,
    'open-' || n || '@customers.example', 'checkout', 2, 'open', :owner, 'urgent',
    now() - interval '10 days', now() - interval '9 days', now() - interval '8 days',
    now() - interval '10 days', '{}', now() - interval '9 days'
FROM generate_series(1, :cases) AS n
"""

SEED_RESOLVED = """
INSERT INTO alerting.followup_cases (
    id, tenant_id, response_id, invitation_id, customer_id, customer_email, touchpoint, score, status,
    resolution, owner_email, priority, opened_at, due_at, resolution_due_at, resolved_at, updated_at,
    sla_done, next_check_at, recovery_due_at)
SELECT gen_random_uuid(), :tenant, gen_random_uuid(), gen_random_uuid(), 'recovered-' || n,
    'recovered-' || n || '@customers.example', 'checkout', 3, 'resolved', 'handled', :owner, 'urgent',
    now() - interval '30 days', now() - interval '29 days', now() - interval '28 days',
    now() - interval '15 days', now() - interval '15 days', '{}', NULL, now() - interval '1 hour'
FROM generate_series(1, :cases) AS n
"""


async def _seed(db: AsyncEngine, tenant_id: uuid.UUID) -> None:
    async with db.begin() as connection:
        await connection.execute(
            text(SEED_OPEN), {"tenant": tenant_id, "owner": CASE_OWNER, "cases": OPEN_CASES}
        )
        await connection.execute(
            text(SEED_RESOLVED), {"tenant": tenant_id, "owner": CASE_OWNER, "cases": RESOLVED_CASES}
        )


async def _cases_done(db: AsyncEngine, tenant_id: uuid.UUID) -> int:
    return await _count(
        db,
        "SELECT count(*) FROM alerting.followup_cases "
        "WHERE tenant_id = :tenant AND status = 'open' AND cardinality(sla_done) > 0",
        tenant=tenant_id,
    )


async def _kill_during_the_sla_pass(stack: Stack, db: AsyncEngine, tenant_id: uuid.UUID) -> list[int]:
    """SIGKILL alerting in the middle of an SLA batch, each time a batch further than the last
    kill; how many cases were done at each kill (fewer than :data:`KILLS` if the pass ends first)."""
    done_at_kills: list[int] = []
    killed_at = datetime(1970, 1, 1, tzinfo=UTC)
    while len(done_at_kills) < KILLS:
        least = done_at_kills[-1] + 1 if done_at_kills else 0
        done = await _kill_mid_batch(stack, db, tenant_id, least=least, started_after=killed_at)
        if done is None:
            break
        done_at_kills.append(done)
        killed_at = await _database_now(db)
    return done_at_kills


async def _kill_mid_batch(
    stack: Stack, db: AsyncEngine, tenant_id: uuid.UUID, *, least: int, started_after: datetime
) -> int | None:
    """Once at least ``least`` cases are done and the process started since ``started_after`` has
    held a transaction open for a quarter of a second (an SLA batch, or the recovery requests: nothing else of
    alerting takes that long), SIGKILL it and wait for the supervisor to start another. None if
    the pass ended first."""

    async def mid_batch() -> tuple[int] | None:
        done = await _cases_done(db, tenant_id)
        if done >= OPEN_CASES or (done >= least and await _batch_under_way(db, started_after)):
            return (done,)
        return None

    done: int
    (done,) = await eventually(mid_batch, within=60, interval=0.05)
    if done >= OPEN_CASES:
        return None
    pid = stack.pid("alerting")
    os.kill(pid, signal.SIGKILL)
    await eventually(lambda: _now(stack.pid("alerting") != pid), within=30)
    return done


async def _batch_under_way(db: AsyncEngine, started_after: datetime) -> bool:
    return bool(
        await _count(
            db,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'nps-alerting' "
            "AND backend_start > :since AND state <> 'idle' "
            "AND xact_start < now() - interval '250 milliseconds'",
            since=started_after,
        )
    )


async def _database_now(db: AsyncEngine) -> datetime:
    [(now,)] = await _rows(db, "SELECT now()")
    assert isinstance(now, datetime)
    return now


async def _outstanding(db: AsyncEngine, tenant_id: uuid.UUID) -> dict[str, int]:
    """What is not done yet: steps due, emails not queued or not sent (nor failed), recovery surveys
    not requested or not asked for. Empty once everything has settled."""
    [counts] = await _rows(
        db,
        """
        SELECT
          (SELECT count(*) FROM alerting.followup_cases
            WHERE tenant_id = :tenant AND next_check_at <= now()),
          :emails - (SELECT count(*) FROM alerting.notifications WHERE tenant_id = :tenant),
          (SELECT count(*) FROM alerting.notifications
            WHERE tenant_id = :tenant AND sent_at IS NULL AND failed_at IS NULL),
          (SELECT count(*) FROM alerting.followup_cases
            WHERE tenant_id = :tenant AND status = 'resolved' AND recovery_requested_at IS NULL),
          :surveys - (SELECT count(*) FROM survey.invitations WHERE tenant_id = :tenant)
        """,
        tenant=tenant_id,
        emails=2 * OPEN_CASES,
        surveys=RESOLVED_CASES,
    )
    names = ("steps due", "emails not queued", "emails unsent", "recoveries due", "surveys not asked")
    return {name: count for name, count in zip(names, counts, strict=True) if count}


async def _settled(db: AsyncEngine, tenant_id: uuid.UUID) -> bool:
    return not await _outstanding(db, tenant_id)


async def test_alerting_killed_mid_escalation_takes_every_step_once_and_asks_once(
    stack: Stack, db: AsyncEngine
) -> None:
    started = time.monotonic()
    tenant_owner = f"cx-{uuid.uuid4().hex[:8]}@kill-test.example"
    async with httpx.AsyncClient(timeout=15) as client:
        await new_tenant(client, stack, owner_email=tenant_owner)
    tenant_id = await eventually(lambda: _tenant_in_alerting(db, tenant_owner), within=30)
    await _seed(db, tenant_id)

    done_at_kills = await _kill_during_the_sla_pass(stack, db, tenant_id)
    assert len(done_at_kills) >= 2, f"alerting was killed part-way only {len(done_at_kills)} times"
    try:
        await eventually(lambda: _settled(db, tenant_id), within=150, interval=0.5)
    except AssertionError as error:
        raise AssertionError(f"not done: {await _outstanding(db, tenant_id)}") from error
    await eventually(lambda: _now(ready(stack.urls["alerting"])), within=30)

    await _assert_every_step_recorded_once(db, tenant_id)
    await _assert_every_notification_queued_once_and_sent(db, tenant_id, tenant_owner)
    resent = await _emails_sent_again(stack, db, tenant_id)
    await _assert_every_recovery_survey_asked_once(db, tenant_id)
    print(
        f"\nalerting killed {len(done_at_kills)} times, with {done_at_kills} of {OPEN_CASES} cases done; "
        f"alert emails sent again: {resent}; {time.monotonic() - started:.0f} s"
    )
    assert resent <= len(done_at_kills) * NOTIFY_BATCH_SIZE


async def _assert_every_step_recorded_once(db: AsyncEngine, tenant_id: uuid.UUID) -> None:
    # Each case's timeline: one breach, one escalation to each level, one resolution breach.
    timelines = await _rows(
        db,
        """
        SELECT
          count(*) FILTER (WHERE e.kind = 'breached'),
          count(*) FILTER (WHERE e.kind = 'escalated' AND e.data->>'level' = 'team lead'),
          count(*) FILTER (WHERE e.kind = 'escalated' AND e.data->>'level' = 'CX manager'),
          count(*) FILTER (WHERE e.kind = 'resolution_breached'),
          count(*) FILTER (WHERE e.kind IN ('reminder', 'resolution_reminder'))
        FROM alerting.followup_cases c LEFT JOIN alerting.case_events e ON e.case_id = c.id
        WHERE c.tenant_id = :tenant AND c.status = 'open'
        GROUP BY c.id
        """,
        tenant=tenant_id,
    )
    assert Counter(timelines) == {(1, 1, 1, 1, 0): OPEN_CASES}
    repeated = await _rows(
        db,
        "SELECT case_id, dedup_key FROM alerting.case_events WHERE tenant_id = :tenant "
        "AND dedup_key IS NOT NULL GROUP BY case_id, dedup_key HAVING count(*) > 1",
        tenant=tenant_id,
    )
    assert repeated == []
    clocks = await _rows(
        db,
        "SELECT sla_done, next_check_at IS NULL, breached_at IS NOT NULL, "
        "resolution_breached_at IS NOT NULL FROM alerting.followup_cases "
        "WHERE tenant_id = :tenant AND status = 'open'",
        tenant=tenant_id,
    )
    assert Counter((tuple(sorted(row[0])), *row[1:]) for row in clocks) == {
        (tuple(STEPS), True, True, True): OPEN_CASES
    }


async def _assert_every_notification_queued_once_and_sent(
    db: AsyncEngine, tenant_id: uuid.UUID, tenant_owner: str
) -> None:
    # The breach goes to the case's owner; the CX manager escalation falls back to the tenant's
    # owner (the tenant has no people, so the team-lead escalation has nobody to tell).
    per_case = await _rows(
        db,
        "SELECT string_agg(n.kind || ' to ' || n.recipient || ': ' || "
        "CASE WHEN n.sent_at IS NULL THEN 'unsent' ELSE 'sent' END, ', ' ORDER BY n.kind) "
        "FROM alerting.followup_cases c LEFT JOIN alerting.notifications n ON n.case_id = c.id "
        "WHERE c.tenant_id = :tenant AND c.status = 'open' GROUP BY c.id",
        tenant=tenant_id,
    )
    expected = f"case_breached to {CASE_OWNER}: sent, escalation_cx_manager to {tenant_owner}: sent"
    assert Counter(summary for (summary,) in per_case) == {expected: OPEN_CASES}


async def _emails_sent_again(stack: Stack, db: AsyncEngine, tenant_id: uuid.UUID) -> int:
    """Every alert email reached the mail server; how many arrived more than once."""
    notification_ids = {
        notification_id
        for (notification_id,) in await _rows(
            db, "SELECT id FROM alerting.notifications WHERE tenant_id = :tenant", tenant=tenant_id
        )
    }
    messages = await asyncio.to_thread(read_headers, stack.data_dir / "mail")
    arrived = Counter(
        int(str(message["Message-ID"]).removeprefix("<nps-alerting-").partition("@")[0])
        for message in messages
        if str(message["Message-ID"]).startswith("<nps-alerting-")
    )
    ours = {notification_id: arrived[notification_id] for notification_id in notification_ids}
    assert min(ours.values()) >= 1, "an alert email never reached the mail server"
    return sum(ours.values()) - len(ours)


async def _assert_every_recovery_survey_asked_once(db: AsyncEngine, tenant_id: uuid.UUID) -> None:
    cases = await _rows(
        db,
        "SELECT c.id, c.recovery_requested_at IS NOT NULL, "
        "count(e.id) FILTER (WHERE e.kind = 'recovery_requested') "
        "FROM alerting.followup_cases c LEFT JOIN alerting.case_events e ON e.case_id = c.id "
        "WHERE c.tenant_id = :tenant AND c.status = 'resolved' GROUP BY c.id",
        tenant=tenant_id,
    )
    assert Counter((row[1], row[2]) for row in cases) == {(True, 1): RESOLVED_CASES}
    expected = {recovery_invitation_id(row[0]) for row in cases}
    # The trigger decided each case once (whatever the relay re-published) and asked for it once.
    decisions = await _rows(
        db,
        "SELECT invitation_id FROM trigger.decisions "
        "WHERE tenant_id = :tenant AND event_type = 'followup.recovery_due.v1'",
        tenant=tenant_id,
    )
    assert sorted(str(invitation) for (invitation,) in decisions) == sorted(map(str, expected))
    invitations = await _rows(
        db, "SELECT id FROM survey.invitations WHERE tenant_id = :tenant", tenant=tenant_id
    )
    assert sorted(str(invitation) for (invitation,) in invitations) == sorted(map(str, expected))


async def _now(value: Any) -> Any:
    return value
