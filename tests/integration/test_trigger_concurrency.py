"""Events for one customer arriving at the same moment, through one edge or several, against the
real trigger (Postgres, broker): the decisions are serialised per customer, so exactly one of them
invites and exactly one survey is requested."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import func, select

from libs.common import topics
from libs.common.events import SURVEY_REQUESTED
from tests.conftest import ServiceUnderTest, StartService, TestTenant, eventually
from tests.integration.test_webhooks_intake import SHOPIFY_SECRET, configure, post_shopify, shopify_order
from tests.support.factories import purchase
from tests.support.services import decisions, trigger_with_tenant


def invited(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in history if d["outcome"] == "invited"]


async def request_ends(service: ServiceUnderTest) -> dict[TopicPartition, int]:
    """Where each partition of nps.survey-requests ends now. A test's customers are new, so their
    requests can only come after: reading from here, not from the start of a topic that every test
    of the session before this one has written to, finds the same ones."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=service.runtime.settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [
            TopicPartition(topics.SURVEY_REQUESTS, p)
            for p in sorted(consumer.partitions_for_topic(topics.SURVEY_REQUESTS) or ())
        ]
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def published_requests(
    service: ServiceUnderTest, customers: set[str], since: dict[TopicPartition, int]
) -> list[dict[str, Any]]:
    """Every survey.requested.v1 of these customers on nps.survey-requests, once the trigger's
    outbox has published everything it holds for them: the topic from ``since`` up to its end."""
    outbox = service.runtime.definition.tables.outbox

    async def relayed() -> bool:
        async with service.runtime.database.uow() as uow:
            waiting = await uow.session.scalar(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.published_at.is_(None), outbox.c.key.in_(sorted(customers)))
            )
        return waiting == 0

    await eventually(relayed, within=30)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=service.runtime.settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [
            TopicPartition(topics.SURVEY_REQUESTS, p)
            for p in sorted(consumer.partitions_for_topic(topics.SURVEY_REQUESTS) or ())
        ]
        consumer.assign(partitions)
        for partition in partitions:
            consumer.seek(partition, since.get(partition, 0))
        ends = await consumer.end_offsets(partitions)
        found: list[dict[str, Any]] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    body = json.loads(record.value)
                    if body["type"] == SURVEY_REQUESTED and body["data"]["customer_id"] in customers:
                        found.append(body)
    finally:
        await consumer.stop()
    return found


async def assert_one_invitation(
    service: ServiceUnderTest, tenant: TestTenant, customer: str, since: dict[TopicPartition, int]
) -> None:
    assert len(invited(await decisions(service, tenant, customer))) == 1
    assert len(await published_requests(service, {customer}, since)) == 1


async def test_ten_parallel_purchases_of_a_new_customer_give_one_invitation(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    since = await request_ends(service)
    customer = f"c-{uuid.uuid4().hex}"
    responses = await asyncio.gather(
        *(
            service.client.post("/v1/events", json=purchase(customer), headers=tenant.headers)
            for _ in range(10)
        )
    )
    assert [r.status_code for r in responses] == [202] * 10
    outcomes = sorted(r.json()["results"][0]["decision"] for r in responses)
    assert outcomes == ["invited"] + ["skipped"] * 9
    history = await decisions(service, tenant, customer)
    assert len(history) == 10
    assert {d["reason"] for d in history if d["outcome"] == "skipped"} == {"rest_period"}
    await assert_one_invitation(service, tenant, customer, since)


async def test_shopify_paid_and_fulfilled_arriving_together_give_one_invitation(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    endpoint = await configure(service, tenant, "shopify", secret=SHOPIFY_SECRET)
    since = await request_ends(service)
    body, customer = shopify_order()
    paid, fulfilled = await asyncio.gather(
        post_shopify(service, endpoint, body, secret=SHOPIFY_SECRET, topic="orders/paid"),
        post_shopify(service, endpoint, body, secret=SHOPIFY_SECRET, topic="orders/fulfilled"),
    )
    assert (paid.status_code, fulfilled.status_code) == (200, 200), (paid.text, fulfilled.text)
    history = await decisions(service, tenant, customer)
    assert sorted(d["outcome"] for d in history) == ["invited", "skipped"]
    await assert_one_invitation(service, tenant, customer, since)


async def test_the_same_customer_over_http_and_kafka_at_once_gets_one_invitation(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    # Each customer's purchase goes to Kafka, and the same customer's purchase is posted over HTTP
    # a little later, after 0 to 39 other customers' messages, so that whatever the consumer's
    # latency, some HTTP decisions overlap with the consumer's transaction for the same customer.
    # Without a per-customer lock both then see a customer never asked.
    since = await request_ends(service)
    customers = [f"c-{uuid.uuid4().hex}" for _ in range(300)]
    lag = {customer: (7 * n) % 40 for n, customer in enumerate(customers)}
    producer = AIOKafkaProducer(bootstrap_servers=service.runtime.settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for step in range(len(customers) + 40):
            if step < len(customers):
                event = purchase(customers[step], tenant=tenant.tenant_id)
                key = customers[step].encode()
                await producer.send(topics.PURCHASES, json.dumps(event).encode(), key=key)
            for n, customer in enumerate(customers[max(0, step - 40) : step + 1], start=max(0, step - 40)):
                if n + lag[customer] == step:
                    response = await service.client.post(
                        "/v1/events", json=purchase(customer), headers=tenant.headers
                    )
                    assert response.status_code == 202
        await producer.flush()
    finally:
        await producer.stop()

    async def both_decided() -> bool:
        for customer in customers:
            if len(await decisions(service, tenant, customer)) < 2:
                return False
        return True

    await eventually(both_decided, within=60)
    counts = {}
    for customer in customers:
        counts[customer] = len(invited(await decisions(service, tenant, customer)))
    assert set(counts.values()) == {1}, counts
    requests = await published_requests(service, set(customers), since)
    assert sorted(r["data"]["customer_id"] for r in requests) == sorted(customers)
