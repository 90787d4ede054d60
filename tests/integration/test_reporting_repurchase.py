"""The repurchase rate against the real broker and database: answers on nps.survey-events and the
trigger's recorded purchases on nps.purchases-recorded, in either order, the rate by NPS group out
over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from libs.common import topics
from libs.common.events import (
    PURCHASE_RECORDED,
    SURVEY_RESPONDED,
    Contract,
    Event,
    Money,
    PurchaseRecorded,
    new_event,
)
from services.reporting.config import ReportingSettings
from services.reporting.main import build
from services.reporting.models import COMMON
from tests.conftest import ServiceUnderTest, StartService, TestTenant, eventually, provision_tenant
from tests.integration.test_reporting_verbatims import answer, publish

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
#: Sixty days ago: a 30-day window has passed, a 90-day one has not.
ANSWERED = NOW - timedelta(days=60)


def bought(customer: str, at: datetime, order: str | None = None) -> PurchaseRecorded:
    return PurchaseRecorded(
        customer_id=customer,
        order_id=order or f"order-{uuid.uuid4().hex[:8]}",
        amount=Money(amount_minor=19_900, currency="DKK"),
        occurred_at=at,
    )


async def report(service: ServiceUnderTest, tenant: TestTenant, **params: str | int) -> dict[str, Any]:
    response = await service.client.get("/v1/reports/repurchase", headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_group(body: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {row["group"]: (row["answers"], row["repurchased"]) for row in body["groups"]}


def recorded(tenant: TestTenant, data: PurchaseRecorded) -> Event[Contract]:
    return new_event(
        PURCHASE_RECORDED, tenant_id=tenant.tenant_id, data=data, subject=data.customer_id, source="/trigger"
    )


async def send(bootstrap: str, events: Sequence[Event[Contract]]) -> None:
    """Events as they are (ids included), in order, each keyed by its customer as the trigger keys them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        for event in events:
            key = (event.envelope.subject or "").encode()
            await producer.send_and_wait(topics.PURCHASES_RECORDED, event.envelope.to_json(), key=key)
    finally:
        await producer.stop()


async def processed(service: ServiceUnderTest, tenant: TestTenant) -> int:
    """How many purchase events of the tenant the ``purchases`` consumer has taken in."""
    table = COMMON.processed_events
    async with service.runtime.database.uow() as uow:
        count = await uow.session.scalar(
            select(func.count())
            .select_from(table)
            .where(table.c.consumer == "purchases", table.c.tenant_id == tenant.tenant_id)
        )
    return int(count or 0)


async def test_promoters_who_bought_again_are_counted_from_purchases_in_either_order(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    other_shop = await provision_tenant(reporting.runtime)
    touchpoint = f"checkout-{uuid.uuid4().hex[:8]}"
    promoter = answer(touchpoint, 10, None, ANSWERED)
    detractor = answer(touchpoint, 3, None, ANSWERED)
    late_promoter = answer(touchpoint, 9, None, ANSWERED)

    # A purchase that arrives before its answer, yet was made after it: kept until the answer comes.
    await send(
        kafka_bootstrap, [recorded(tenant, bought(late_promoter.customer_id, ANSWERED + timedelta(days=5)))]
    )
    await eventually(lambda: _at_least(processed(reporting, tenant), 1))

    again = recorded(tenant, bought(promoter.customer_id, ANSWERED + timedelta(days=10), order="o-again"))
    await publish(
        kafka_bootstrap,
        [
            (SURVEY_RESPONDED, topics.SURVEY_EVENTS, tenant, data)
            for data in (promoter, detractor, late_promoter)
        ],
    )
    await send(
        kafka_bootstrap,
        [
            # The orders that were surveyed: bought before the answers, never a repurchase.
            recorded(tenant, bought(promoter.customer_id, ANSWERED - timedelta(hours=1))),
            recorded(tenant, bought(detractor.customer_id, ANSWERED - timedelta(days=2))),
            again,
            # The very same event once more: its id was seen.
            again,
            # The same order again under another id and another time: the first recorded stays.
            recorded(tenant, bought(promoter.customer_id, ANSWERED + timedelta(days=2), order="o-again")),
            # Another shop's customer of the same id buying: not this tenant's detractor.
            recorded(other_shop, bought(detractor.customer_id, ANSWERED + timedelta(days=3))),
        ],
    )
    # Five distinct events of the tenant; the other shop's one.
    await eventually(lambda: _at_least(processed(reporting, tenant), 5))
    await eventually(lambda: _at_least(processed(reporting, other_shop), 1))

    async def counted() -> dict[str, Any] | None:
        body = await report(reporting, tenant, days=30, touchpoint=touchpoint)
        return body if by_group(body)["promoter"] == (2, 2) and by_group(body)["detractor"][0] else None

    body = await eventually(counted)
    assert by_group(body) == {"promoter": (2, 2), "passive": (0, 0), "detractor": (1, 0)}
    promoters = body["groups"][0]
    assert promoters["rate"] == 1.0 and promoters["interval"]["high"] == 1.0
    assert promoters["interval"]["level"] == 0.95
    assert body["groups"][2]["rate"] == 0.0
    assert body["groups"][1]["rate"] is None and body["groups"][1]["interval"] is None
    # The promoter came back on day 10 (not day 2: that was a repeat of the order), the late one on
    # day 5: within a week, only the late one.
    assert by_group(await report(reporting, tenant, days=7, touchpoint=touchpoint))["promoter"] == (2, 1)
    # Sixty days ago is too recent for a 90-day window.
    assert by_group(await report(reporting, tenant, touchpoint=touchpoint))["promoter"] == (0, 0)


async def _at_least(count: Awaitable[int], expected: int) -> bool:
    return await count >= expected


async def test_the_window_is_1_to_365_days(start_service: StartService) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    for days in (0, 366, "soon"):
        response = await reporting.client.get(
            "/v1/reports/repurchase", headers=tenant.headers, params={"days": days}
        )
        assert response.status_code == 422, response.text
        assert [problem["field"] for problem in response.json()["problems"]] == ["query.days"]
