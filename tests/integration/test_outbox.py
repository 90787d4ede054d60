"""The transactional outbox and its relay, against real Postgres and Kafka."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from libs.common import topics
from libs.common.db import Database
from libs.common.events import SURVEY_SENT, Contract, Event, SurveySent, new_event
from libs.common.outbox import OutboxRelay
from services.trigger.config import TriggerSettings
from services.trigger.main import build
from services.trigger.models import COMMON
from tests.conftest import StartService, eventually, read_topic


def sent_events(tenant: str, count: int) -> list[Event[Contract]]:
    now = datetime.now(UTC)
    return [
        new_event(
            SURVEY_SENT,
            tenant_id=tenant,
            source="/tests",
            subject=f"c{i}",
            data=SurveySent(
                invitation_id=uuid.uuid4(), customer_id=f"c{i}", touchpoint="webshop-purchase", sent_at=now
            ),
        )
        for i in range(count)
    ]


def of_tenant(tenant: str) -> Any:
    """Records of one tenant's events. The topic may also hold what other tests put there on
    purpose, such as the poison messages, which are not events at all."""

    def matches(record: Any) -> bool:
        try:
            envelope = json.loads(record.value)
        except ValueError:
            return False
        return isinstance(envelope, dict) and envelope.get("tenantid") == tenant

    return matches


async def unpublished(database: Database, event_ids: list[str]) -> int:
    table = database.tables.outbox
    async with database.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(table)
            .where(table.c.event_id.in_(event_ids), table.c.published_at.is_(None))
        )
    return int(count or 0)


async def test_events_written_with_the_state_are_published_once_in_batches(
    start_service: StartService,
) -> None:
    service = await start_service(build, TriggerSettings)
    tenant = str(uuid.uuid4())
    events = sent_events(tenant, 1200)
    async with service.runtime.database.uow() as uow:
        for event in events:
            uow.emit(event)
        await uow.commit()
    records = await read_topic(
        service.runtime.settings.kafka_bootstrap_servers, topics.SURVEY_EVENTS, of_tenant(tenant), count=1200
    )
    assert sorted(json.loads(r.value)["id"] for r in records) == sorted(e.id for e in events)
    assert {r.key for r in records} == {f"c{i}".encode() for i in range(1200)}
    assert await eventually(lambda: _zero(unpublished(service.runtime.database, [e.id for e in events])))


async def _zero(count: Any) -> bool:
    return await count == 0  # type: ignore[no-any-return]


async def test_a_rolled_back_transaction_publishes_nothing(start_service: StartService) -> None:
    service = await start_service(build, TriggerSettings)
    tenant = str(uuid.uuid4())
    [lost] = sent_events(tenant, 1)
    async with service.runtime.database.uow() as uow:
        uow.emit(lost)
        # No commit: leaving the block rolls the state change and its events back together.
    [kept] = sent_events(tenant, 1)
    async with service.runtime.database.uow() as uow:
        uow.emit(kept)
        await uow.commit()
    records = await read_topic(
        service.runtime.settings.kafka_bootstrap_servers, topics.SURVEY_EVENTS, of_tenant(tenant)
    )
    assert [json.loads(r.value)["id"] for r in records] == [kept.id]


async def test_events_committed_while_the_service_is_down_go_out_when_it_starts(
    start_service: StartService, pg_url: str
) -> None:
    first = await start_service(build, TriggerSettings, fresh=True)
    await first.runtime.stop()
    tenant = str(uuid.uuid4())
    database = Database(pg_url, COMMON)
    events = sent_events(tenant, 3)
    async with database.uow() as uow:
        for event in events:
            uow.emit(event)
        await uow.commit()
    await database.dispose()
    # A new process of the same service: its relay finds the rows and publishes them.
    await start_service(build, TriggerSettings, fresh=True)
    records = await read_topic(
        first.runtime.settings.kafka_bootstrap_servers, topics.SURVEY_EVENTS, of_tenant(tenant), count=3
    )
    assert len(records) == 3


async def test_a_fresh_in_memory_broker_gets_the_retained_outbox_again(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    service = await start_service(build, TriggerSettings)
    tenant = str(uuid.uuid4())
    events = sent_events(tenant, 2)
    async with service.runtime.database.uow() as uow:
        for event in events:
            uow.emit(event)
        await uow.commit()
    await read_topic(kafka_bootstrap, topics.SURVEY_EVENTS, of_tenant(tenant), count=2)
    await eventually(lambda: _zero(unpublished(service.runtime.database, [e.id for e in events])))

    epoch = str(uuid.uuid4())
    replay = OutboxRelay(
        service.runtime.database, service.runtime.producer, service.runtime.metrics, broker_epoch=epoch
    )
    await replay._replay_into_new_broker()
    assert await unpublished(service.runtime.database, [e.id for e in events]) == 2
    records = await read_topic(kafka_bootstrap, topics.SURVEY_EVENTS, of_tenant(tenant), count=4)
    assert len(records) == 4
    # The same epoch again (a service restart, not a broker restart) replays nothing.
    await eventually(lambda: _zero(unpublished(service.runtime.database, [e.id for e in events])))
    await replay._replay_into_new_broker()
    assert await unpublished(service.runtime.database, [e.id for e in events]) == 0
