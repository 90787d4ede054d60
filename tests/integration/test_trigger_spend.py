"""The trigger against real Postgres and Kafka: what customers spent, kept per order in the purchases
ledger, travels as the 12-month snapshot on each survey request; and the decisions CSV streams a
tenant's decisions, complete and quoted against formulas."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from libs.common import topics
from libs.common.events import PURCHASE_RECORDED, SURVEY_REQUESTED
from tests.conftest import ServiceUnderTest, StartService, TestTenant, read_topic
from tests.support.factories import purchase
from tests.support.services import post_events, trigger_with_tenant


def _request_for(customer: str) -> Any:
    def match(record: Any) -> bool:
        body = json.loads(record.value)
        return bool(body["type"] == SURVEY_REQUESTED and body["data"]["customer_id"] == customer)

    return match


async def _spend_on_survey(service: ServiceUnderTest, tenant: TestTenant, customer: str, **order: Any) -> Any:
    """Survey ``customer`` with one more purchase; the ``spend_12m`` its survey request carries."""
    result = (await post_events(service, tenant, purchase(customer, **order)))["results"][0]
    assert result["decision"] == "invited", result
    bootstrap = service.runtime.settings.kafka_bootstrap_servers
    [record] = await read_topic(bootstrap, topics.SURVEY_REQUESTS, _request_for(customer))
    return json.loads(record.value)["data"]["context"].get("spend_12m")


def _unasked(customer: str, **order: Any) -> dict[str, Any]:
    """A purchase without an address: recorded in the ledger, nobody asked (``no_email``)."""
    return purchase(customer, email=None, **order)


async def test_a_survey_carries_the_customers_spend_per_currency_over_12_months(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex}"
    long_ago = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    earlier = [
        _unasked(customer, order_id=f"{customer}-1", amount="100.00", currency="DKK"),
        _unasked(customer, order_id=f"{customer}-2", amount="50.25", currency="DKK"),
        _unasked(customer, order_id=f"{customer}-3", amount="19.99", currency="EUR"),
        # The same order again (a retried webhook, another event id): it counts once.
        _unasked(customer, order_id=f"{customer}-1", amount="100.00", currency="DKK"),
        # More than 365 days ago: left out.
        _unasked(customer, order_id=f"{customer}-old", amount="999", currency="DKK", occurred_at=long_ago),
    ]
    await post_events(service, tenant, earlier)
    spend = await _spend_on_survey(service, tenant, customer, amount="10", currency="DKK")
    # Largest first, each in its own minor units, the surveyed purchase included.
    assert spend == [{"amount_minor": 16025, "currency": "DKK"}, {"amount_minor": 1999, "currency": "EUR"}]


async def test_yen_and_dinar_keep_their_own_minor_units_and_another_tenants_purchases_never_count(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    _, other = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex}"
    # The same customer id at another shop: another customer.
    await post_events(service, other, [_unasked(customer, amount="5000", currency="DKK")])
    await post_events(service, tenant, [_unasked(customer, amount="1500", currency="JPY")])
    spend = await _spend_on_survey(service, tenant, customer, amount="2.5", currency="KWD")
    assert spend == [{"amount_minor": 1500, "currency": "JPY"}, {"amount_minor": 2500, "currency": "KWD"}]


async def test_a_customer_without_amounts_is_surveyed_with_no_spend(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex}"
    await post_events(service, tenant, [_unasked(customer, currency="DKK")])
    assert await _spend_on_survey(service, tenant, customer) is None


async def test_the_decisions_csv_streams_every_decision_of_the_range_quoted(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    formulas = ["=HYPERLINK(1)", "+1", "-1", "@SUM(1)"]
    customers = formulas + [f"c-{index}" for index in range(2500 - len(formulas))]
    events = [_unasked(customer) for customer in customers]
    # Batches of 900: the export's pages of 1,000 then end inside a batch, among equal decision times.
    for start in range(0, len(events), 900):
        await post_events(service, tenant, events[start : start + 900])

    since = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    response = await service.client.get("/v1/decisions.csv", params={"since": since}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.text.endswith("\r\n")
    [header, *rows] = list(csv.reader(io.StringIO(response.text, newline="")))
    assert header[:5] == ["decided_at", "event_id", "event_type", "customer_id", "touchpoint"]
    assert len(rows) == len(events)
    by_event = {row[1]: dict(zip(header, row, strict=True)) for row in rows}
    assert set(by_event) == {event["id"] for event in events}
    exported = {row["customer_id"] for row in by_event.values()}
    assert {f"'{formula}" for formula in formulas} <= exported
    assert not exported & set(formulas)
    assert {(row["outcome"], row["reason"]) for row in by_event.values()} == {("skipped", "no_email")}


async def test_the_decisions_csv_refuses_a_range_backwards_or_over_three_years(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    for params in (
        {"since": "2026-02-01", "until": "2026-01-01"},
        {"since": "2020-01-01", "until": "2026-01-01"},
    ):
        response = await service.client.get("/v1/decisions.csv", params=params, headers=tenant.headers)
        assert response.status_code == 422, response.text
        assert [problem["field"] for problem in response.json()["problems"]] == ["query.since"]
    response = await service.client.get("/v1/decisions.csv", params={"until": "soon"}, headers=tenant.headers)
    assert [problem["field"] for problem in response.json()["problems"]] == ["query.until"]


async def test_each_order_added_to_the_ledger_is_announced_once_for_reporting(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex}"
    bought = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    order = f"{customer}-1"
    first = _unasked(customer, order_id=order, amount="12.50", currency="DKK", occurred_at=bought.isoformat())
    # The same order again under another event id (a retried webhook), then another order.
    again = _unasked(customer, order_id=order, amount="99", currency="DKK")
    await post_events(service, tenant, [first, again])
    await post_events(service, tenant, [again | {"id": str(uuid.uuid4())}])
    await post_events(
        service, tenant, [_unasked(customer, order_id=f"{customer}-2", amount="3", currency="EUR")]
    )

    def recorded(record: Any) -> bool:
        body = json.loads(record.value)
        return bool(body["type"] == PURCHASE_RECORDED and body["data"]["customer_id"] == customer)

    bootstrap = service.runtime.settings.kafka_bootstrap_servers
    records = await read_topic(bootstrap, topics.PURCHASES_RECORDED, recorded, count=2)
    bodies = [json.loads(record.value) for record in records]
    assert [body["data"]["order_id"] for body in bodies] == [f"{customer}-1", f"{customer}-2"]
    assert bodies[0]["tenantid"] == str(tenant.tenant_id)
    assert bodies[0]["data"]["amount"] == {"amount_minor": 1250, "currency": "DKK"}
    assert datetime.fromisoformat(bodies[0]["data"]["occurred_at"]) == bought
    assert {record.key for record in records} == {customer.encode()}
