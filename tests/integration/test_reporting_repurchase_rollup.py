"""The repurchase rate's daily rollup against the real database: random sequences of answers,
revisions (scores moving between NPS groups), purchases, repeats and reorderings, handled in
random batches by the two consumers' handlers, leave ``reporting.repurchase_days`` equal to a
recount of the answers, and the panel's counts equal to the raw query it replaced."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from libs.common.events import PURCHASE_RECORDED, Contract, Event
from services.reporting.config import ReportingSettings
from services.reporting.domain.repurchase import WINDOWS, answered_by
from services.reporting.handlers import purchases, read_model
from services.reporting.main import build
from services.reporting.repository import ReportFilter, ReportingRepository
from tests.conftest import ServiceUnderTest, StartService, TestTenant, provision_tenant
from tests.integration.test_reporting_repurchase import bought, recorded
from tests.integration.test_reporting_rollups import Answer

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)

_CAME_BACK = ", ".join(
    f"count(*) FILTER (WHERE repurchased_at <= responded_at + interval '{days * 24} hours')"
    for days in WINDOWS
)
#: The rollup's rows recounted from the answers.
_RECOUNT = text(
    "SELECT touchpoint, (responded_at AT TIME ZONE 'UTC')::date, score, count(*), "
    f"{_CAME_BACK} FROM reporting.responses WHERE tenant_id = :tenant GROUP BY 1, 2, 3"
)
_ROLLUP = text(
    "SELECT touchpoint, day, score, answers, "
    f"{', '.join(f'came_back_{days}' for days in WINDOWS)} FROM reporting.repurchase_days "
    "WHERE tenant_id = :tenant"
)
#: What the panel counted before the rollup: one grouped scan of the range's answers.
_RAW_PANEL = text(
    "SELECT score, count(*), count(*) FILTER (WHERE repurchased_at <= responded_at + :window) "
    "FROM reporting.responses WHERE tenant_id = :tenant AND responded_at >= :since "
    "AND responded_at < :until AND responded_at <= :cutoff GROUP BY score"
)


def _events(tenant: TestTenant, rng: random.Random) -> list[Event[Contract]]:
    """A few customers' answers (some revised, some repeated) and purchases around them, shuffled."""
    events: list[Event[Contract]] = []
    touchpoints = [f"checkout-{uuid.uuid4().hex[:6]}", f"store-{uuid.uuid4().hex[:6]}"]
    for _ in range(5):
        customer = f"customer-{uuid.uuid4().hex[:8]}"
        for _ in range(rng.randint(1, 3)):
            answer = Answer(tenant, rng.choice(touchpoints), NOW - timedelta(days=rng.uniform(0, 420)))
            answer.customer_id = customer
            versions = [answer.responded(rng.randint(0, 10))]
            versions += [
                answer.updated(revision, rng.randint(0, 10)) for revision in range(2, rng.randint(2, 4))
            ]
            events += [*versions, answer.responded(rng.randint(0, 10)), rng.choice(versions)]
            for _ in range(rng.randint(0, 3)):
                at = answer.responded_at + timedelta(days=rng.uniform(-20, 400))
                order = f"order-{uuid.uuid4().hex[:8]}"
                purchase = recorded(tenant, bought(customer, at, order=order))
                # The same order again under another event id, maybe another time: the first stays.
                moved = at + timedelta(days=rng.uniform(-5, 5))
                again = recorded(tenant, bought(customer, moved, order=order))
                events += [purchase, again] if rng.random() < 0.3 else [purchase]
    rng.shuffle(events)
    return events


async def _handle(service: ServiceUnderTest, events: list[Event[Contract]], rng: random.Random) -> None:
    """In random batches, each of one consumer's events, each batch one transaction."""
    while events:
        size = rng.randint(1, 6)
        batch, events[:] = events[:size], events[size:]
        for bought_events in (True, False):
            chosen = [event for event in batch if (event.type == PURCHASE_RECORDED) == bought_events]
            if not chosen:
                continue
            async with service.runtime.database.uow() as uow:
                await (purchases.record if bought_events else read_model.project)(chosen, uow)
                await uow.commit()


async def _rows(service: ServiceUnderTest, query: Any, **params: object) -> set[tuple[object, ...]]:
    async with service.runtime.database.uow() as uow:
        return {tuple(row) for row in await uow.session.execute(query, params)}


@pytest.mark.parametrize("seed", range(4))
async def test_the_rollup_equals_a_recount_whatever_the_order_and_the_repeats(
    start_service: StartService, seed: int
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    rng = random.Random(seed)
    await _handle(reporting, _events(tenant, rng), rng)

    rollup = await _rows(reporting, _ROLLUP, tenant=tenant.tenant_id)
    recount = await _rows(reporting, _RECOUNT, tenant=tenant.tenant_id)
    assert recount and {row for row in rollup if any(row[3:])} == recount
    # Some answers did come back, or the test would prove little.
    assert any(row[-1] for row in recount)

    for days in WINDOWS:
        cutoff = answered_by(NOW, days)
        for since, until in (
            (NOW - timedelta(days=450), NOW + timedelta(days=1)),
            (cutoff - timedelta(days=40), cutoff + timedelta(hours=7)),
        ):
            async with reporting.runtime.database.uow() as uow:
                repository: ReportingRepository = uow.repository
                counted = await repository.repurchase_counts(
                    ReportFilter(uuid.UUID(str(tenant.tenant_id)), None, since, until), cutoff, days
                )
            raw = await _rows(
                reporting,
                _RAW_PANEL,
                tenant=tenant.tenant_id,
                window=timedelta(days=days),
                since=since,
                until=until,
                cutoff=cutoff,
            )
            assert {(row.score, row.answers, row.repurchased) for row in counted} == raw, (
                days,
                since,
                until,
                sorted(raw),
            )


async def test_the_window_is_one_the_rollup_keeps(start_service: StartService) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    for days, status in ((45, 422), (364, 422), (14, 200), (365, 200)):
        response = await reporting.client.get(
            "/v1/reports/repurchase", headers=tenant.headers, params={"days": days}
        )
        assert response.status_code == status, response.text
        if status == 422:
            assert [problem["field"] for problem in response.json()["problems"]] == ["query.days"]
    schema = (await reporting.client.get("/openapi.json")).json()
    (days_parameter,) = [
        parameter
        for parameter in schema["paths"]["/v1/reports/repurchase"]["get"]["parameters"]
        if parameter["name"] == "days"
    ]
    assert days_parameter["schema"]["enum"] == list(WINDOWS)
