"""The outbox relay: publishes events that handlers wrote in the same transaction as their state.

It locks a batch of unpublished rows (``FOR UPDATE SKIP LOCKED``, so several replicas can share the
work), sends them all, waits for the broker's acknowledgements, then marks them published in the
same transaction. A crash between send and mark re-sends the batch: consumers are idempotent by
event id, so that is harmless, whereas the opposite order could lose events.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from libs.common import tracing
from libs.common.db import Database
from libs.common.jobs import Due, Job
from libs.common.metrics import ServiceMetrics

log = logging.getLogger(__name__)

CONTENT_TYPE = ("content-type", b"application/cloudevents+json; charset=utf-8")


class OutboxRelay(Job):
    """A job of the service's runner (``outbox-relay``), woken by every commit that wrote events."""

    name = "outbox-relay"

    def __init__(
        self,
        database: Database[Any],
        producer: AIOKafkaProducer,
        metrics: ServiceMetrics,
        *,
        batch_size: int = 500,
        poll_seconds: float = 0.5,
        retention: timedelta = timedelta(days=7),
        dlq_unattributed_key_days: int = 30,
        broker_epoch: str | None = None,
    ) -> None:
        self._database = database
        self._table = database.tables.outbox
        self._producer = producer
        self._metrics = metrics
        self.batch_size = batch_size
        self.every = poll_seconds
        self._retention = retention
        self._dlq_key_retention = timedelta(days=dlq_unattributed_key_days)
        self._broker_epoch = broker_epoch
        self._last_cleanup = datetime.min.replace(tzinfo=UTC)

    async def prepare(self) -> None:
        await self._replay_into_new_broker()

    async def run_once(self) -> int:
        published = await self.publish_batch()
        await self._cleanup_if_due()
        return published

    async def drain(self) -> None:
        # Publish what is ready so a clean shutdown leaves nothing behind that it could have sent.
        while await self.publish_batch() > 0:
            pass

    async def oldest_due(self) -> datetime | None:
        return (await self.due()).oldest

    async def due(self) -> Due:
        """The unpublished events: when the oldest was written and how many there are, in one
        query over the partial index of unpublished rows."""
        table = self._table
        async with self._database.sessions() as session:
            oldest, count = (
                await session.execute(
                    select(func.min(table.c.created_at), func.count()).where(table.c.published_at.is_(None))
                )
            ).one()
        self._metrics.outbox_pending.set(int(count))
        return Due(oldest, int(count))

    async def publish_batch(self) -> int:
        table = self._table
        async with self._database.sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(table.c.id, table.c.topic, table.c.key, table.c.payload)
                    .where(table.c.published_at.is_(None))
                    .order_by(table.c.id)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                self._metrics.outbox_pending.set(0)
                return 0
            # The events keep the context they were written in; the publish is linked to each trace.
            links = []
            if tracing.recording():
                links = tracing.links_to(_trace_context(row.payload) for row in rows)
            with tracing.span(
                "outbox publish",
                kind=tracing.SpanKind.PRODUCER,
                links=links,
                attributes={"messaging.system": "kafka", "messaging.batch.message_count": len(rows)},
            ):
                deliveries = [
                    await self._producer.send(
                        row.topic,
                        row.payload,
                        key=row.key.encode() if row.key else None,
                        headers=[CONTENT_TYPE],
                    )
                    for row in rows
                ]
                await asyncio.gather(*deliveries)
            await session.execute(
                update(table).where(table.c.id.in_([row.id for row in rows])).values(published_at=func.now())
            )
        for row in rows:
            self._metrics.outbox_published.labels(row.topic).inc()
        return len(rows)

    async def pending(self) -> int:
        async with self._database.sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(self._table).where(self._table.c.published_at.is_(None))
            )
        return int(count or 0)

    async def _cleanup_if_due(self) -> None:
        now = datetime.now(UTC)
        if now - self._last_cleanup < timedelta(minutes=10):
            return
        self._last_cleanup = now
        processed = self._database.tables.processed_events
        async with self._database.sessions() as session, session.begin():
            await session.execute(
                delete(self._table).where(self._table.c.published_at < now - self._retention)
            )
            # Redeliveries come within minutes; a month of memory is ample and keeps the table small.
            await session.execute(
                delete(processed).where(processed.c.processed_at < now - timedelta(days=30))
            )
            pending = await session.scalar(
                select(func.count()).select_from(self._table).where(self._table.c.published_at.is_(None))
            )
        self._metrics.outbox_pending.set(int(pending or 0))
        await self.expire_dlq_keys(now)

    async def expire_dlq_keys(self, now: datetime) -> int:
        """Forget the keys of DLQ copies whose customer could not be told, once they are older than
        ``DLQ_UNATTRIBUTED_KEY_DAYS``: an erasure cannot find them, so time does (sealing.py)."""
        keys = self._database.tables.dlq_keys
        async with self._database.sessions() as session, session.begin():
            result = await session.execute(
                delete(keys).where(
                    keys.c.customer_id.is_(None), keys.c.created_at < now - self._dlq_key_retention
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def _replay_into_new_broker(self) -> None:
        """The embedded broker keeps messages in memory only. When ``make run`` starts a fresh one,
        re-publish the retained outbox so that nothing in flight at the last stop is lost; the
        consumers' event-id idempotency turns the repeats into no-ops."""
        if not self._broker_epoch:
            return
        state = self._database.tables.relay_state
        async with self._database.sessions() as session, session.begin():
            seen = await session.scalar(
                select(state.c.value).where(state.c.name == "broker_epoch").with_for_update()
            )
            if seen == self._broker_epoch:
                return
            result = await session.execute(
                update(self._table).where(self._table.c.published_at.is_not(None)).values(published_at=None)
            )
            await session.execute(
                pg_insert(state)
                .values(name="broker_epoch", value=self._broker_epoch)
                .on_conflict_do_update(index_elements=[state.c.name], set_={"value": self._broker_epoch})
            )
        log.info("outbox.replayed_into_new_broker", extra={"events": getattr(result, "rowcount", None)})


def _trace_context(payload: bytes) -> dict[str, str] | None:
    try:
        envelope = json.loads(payload)
    except ValueError:
        return None
    return tracing.carrier_of(envelope) if isinstance(envelope, dict) else None
