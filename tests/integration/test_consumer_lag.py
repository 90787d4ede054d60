"""Consumer lag as an operator reads it on /metrics: the messages a group has not committed yet,
checked against a count of the records actually there (the embedded broker's own end offsets
under-report, see libs/common/lag.py), and back to 0 once the group catches up."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from libs.common import topics
from libs.common.events import TENANT_CREATED, TenantCreated, new_event
from services.scoring.config import ScoringSettings
from services.scoring.main import build
from tests.conftest import ServiceUnderTest, StartService, eventually, metric_value

pytestmark = pytest.mark.integration

LAG = "nps_scoring_consumer_lag_messages"


async def _lag(service: ServiceUnderTest, topic: str) -> float:
    """The group's lag summed over the topic's partitions, from the service's /metrics."""
    total = 0.0
    consumer = AIOKafkaConsumer(bootstrap_servers=service.runtime.settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
    finally:
        await consumer.stop()
    for partition in partitions:
        total += await metric_value(
            service.client, LAG, group="scores", topic=topic, partition=str(partition)
        )
    return total


async def _not_yet_consumed(bootstrap: str, group: str, topic: str) -> int:
    """Records at or after the group's committed offset, counted by reading them."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
        finally:
            await admin.close()
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        for tp in partitions:
            found = committed.get(tp)
            if found is not None and found.offset >= 0:
                consumer.seek(tp, found.offset)
        counted = 0
        idle = 0
        while idle < 3:
            batches = await consumer.getmany(timeout_ms=300)
            read = sum(len(records) for records in batches.values())
            counted += read
            idle = idle + 1 if read == 0 else 0
        return counted
    finally:
        await consumer.stop()


async def test_lag_counts_the_messages_a_stuck_group_has_not_consumed_then_falls_to_zero(
    start_service: StartService, pg_url: str
) -> None:
    scoring = await start_service(build, ScoringSettings, fresh=True)
    bootstrap = scoring.runtime.settings.kafka_bootstrap_servers
    # Scoring's answers group (its other, ``erasures``, reads only erasure requests).
    [runner] = [runner for runner in scoring.runtime.runners if runner.group_id.endswith(".scores")]
    await asyncio.wait_for(runner.started.wait(), 60)
    # A fresh group reads the session's history first; it is caught up when its lag is 0.
    await eventually(lambda: _caught_up(scoring, bootstrap, runner.group_id), within=90)

    engine = create_async_engine(pg_url)
    try:
        async with engine.connect() as lock:
            # The group cannot record any event as processed: it fetches, blocks, commits nothing.
            await lock.execute(text("LOCK TABLE scoring.processed_events IN EXCLUSIVE MODE"))
            sent = 7
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
            await producer.start()
            try:
                # One batch of seven records: the case the broker's ListOffsets gets wrong.
                pending = [
                    await producer.send(topics.TENANTS, _tenant_created(), partition=0) for _ in range(sent)
                ]
                await asyncio.gather(*pending)
            finally:
                await producer.stop()

            async def lag_matches_count() -> tuple[float, int] | None:
                exported = await _lag(scoring, topics.TENANTS)
                counted = await _not_yet_consumed(bootstrap, runner.group_id, topics.TENANTS)
                return (exported, counted) if exported == counted and counted >= sent else None

            exported, counted = await eventually(lag_matches_count, within=30)
            assert exported == counted >= sent
            await lock.rollback()

        await eventually(lambda: _caught_up(scoring, bootstrap, runner.group_id), within=60)
    finally:
        await engine.dispose()


async def _caught_up(service: ServiceUnderTest, bootstrap: str, group: str) -> bool:
    return (
        await _not_yet_consumed(bootstrap, group, topics.TENANTS) == 0
        and await _lag(service, topics.TENANTS) == 0
        and await _lag(service, topics.SURVEY_EVENTS) == 0
    )


def _tenant_created() -> bytes:
    tenant_id = uuid.uuid4()
    event = new_event(
        TENANT_CREATED,
        tenant_id=str(tenant_id),
        source="/tests",
        subject=str(tenant_id),
        data=TenantCreated(
            tenant_id=tenant_id,
            name=f"lag-{tenant_id.hex[:8]}",
            owner_email="owner@lag.example",
            created_at=datetime.now(UTC),
        ),
    )
    return event.envelope.to_json()
