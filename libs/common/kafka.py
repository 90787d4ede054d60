"""Kafka machinery: the producer, topic creation, and the consumer runner with its DLQ.

The runner's contract, which every service relies on:

* an offset is committed only after the database transaction holding the message's effects has
  committed, so a crash at any point redelivers rather than loses;
* each event is processed at most once per consumer, by event id (``processed_events``), so a
  redelivery has no second effect;
* a message that cannot be decoded, fails validation, or is rejected by its handler goes to
  ``<topic>.dlq`` with the reason in its headers, is counted, and the runner carries on;
* a transient fault (database or broker unreachable) is retried with backoff, never dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from libs.common.config import ServiceSettings
from libs.common.db import Database, UnitOfWork
from libs.common.events import Contract, Event, InvalidEvent, decode_kafka
from libs.common.metrics import ServiceMetrics
from libs.common.topics import dlq

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[Event[Contract]], UnitOfWork], Awaitable[None]]
EventHandler = Callable[[Event[Any], UnitOfWork], Awaitable[None]]

DLQ_REASON = "nps-dlq-reason"
# Deadlocks and serialization failures are worth a retry; so is anything about the connection.
_RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "08000", "08003", "08006"}


class RejectEvent(Exception):
    """Raised by a handler for an event that is well-formed but can never be processed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_transient(error: BaseException) -> bool:
    if isinstance(error, OperationalError | InterfaceError | OSError | TimeoutError | KafkaConnectionError):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        return sqlstate in _RETRYABLE_SQLSTATES
    return False


def make_producer(settings: ServiceSettings, service: str) -> AIOKafkaProducer:
    # Tansu, the embedded broker, has no InitProducerId; idempotence is for real Kafka only.
    # Exactly-once effects come from the outbox plus idempotent consumers, not from the producer.
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=settings.kafka_client_id or f"nps-{service}",
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
    )


async def ensure_topics(bootstrap_servers: str, wanted: dict[str, int], replication: int = 1) -> None:
    """Create missing topics; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, parts, replication) for name, parts in wanted.items() if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


def dispatch_by_type(handlers: dict[str, EventHandler]) -> BatchHandler:
    """A batch handler that calls one handler per event type, in order; other types are ignored.

    Topics carry several event types and a service subscribes to the ones it cares about.
    """

    async def handle(events: list[Event[Contract]], uow: UnitOfWork) -> None:
        for event in events:
            handler = handlers.get(event.type)
            if handler is not None:
                await handler(event, uow)

    return handle


@dataclass
class ConsumerSpec:
    """One consumer group of a service: which topics, and the batch handler for their events."""

    name: str
    topics: Sequence[str]
    handle: BatchHandler
    allowed_types: frozenset[str] | None = None


@dataclass
class _Item:
    record: ConsumerRecord[bytes, bytes]
    event: Event[Contract]


class ConsumerRunner:
    def __init__(
        self,
        spec: ConsumerSpec,
        *,
        service: str,
        settings: ServiceSettings,
        database: Database,
        producer: AIOKafkaProducer,
        metrics: ServiceMetrics,
    ) -> None:
        self.spec = spec
        self.group_id = f"{settings.kafka_group_prefix}.{service}.{spec.name}"
        self._settings = settings
        self._database = database
        self._producer = producer
        self._metrics = metrics
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self.started = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            *self.spec.topics,
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=self.group_id,
            client_id=f"{self.group_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._settings.consumer_batch_size,
            # Frequent heartbeats make a restarted member rejoin in seconds rather than a session.
            session_timeout_ms=self._settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self._settings.kafka_heartbeat_interval_ms,
        )
        self._consumer = consumer
        await consumer.start()
        self.started.set()
        log.info("consumer.started", extra={"group": self.group_id, "topics": list(self.spec.topics)})
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(
                    timeout_ms=300, max_records=self._settings.consumer_batch_size
                )
                if not batches:
                    continue
                with self._metrics.batch_seconds.labels(self.spec.name).time():
                    await self._handle_batches(batches)
        finally:
            await consumer.stop()
            log.info("consumer.stopped", extra={"group": self.group_id})

    async def _handle_batches(
        self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        items: list[_Item] = []
        for records in batches.values():
            for record in records:
                try:
                    event = decode_kafka(record.headers, record.value, allowed_types=self.spec.allowed_types)
                except InvalidEvent as error:
                    await self._dead_letter(record, error.reason)
                    continue
                items.append(_Item(record, event))
        if items:
            await self._process(items)
        assert self._consumer is not None
        # Only after the effects are committed (and poison messages are safely in the DLQ).
        await self._consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})

    async def _process(self, items: list[_Item]) -> None:
        delay = 0.2
        while True:
            try:
                async with self._database.uow() as uow:
                    fresh = await uow.claim(self.spec.name, [item.event for item in items])
                    if fresh:
                        await self.spec.handle(fresh, uow)
                    await uow.commit()
                fresh_ids = {(event.tenant_id, event.id) for event in fresh}
                for item in items:
                    outcome = (
                        "processed" if (item.event.tenant_id, item.event.id) in fresh_ids else "duplicate"
                    )
                    self._metrics.consumed.labels(item.record.topic, outcome).inc()
                return
            except RejectEvent as error:
                if len(items) == 1:
                    await self._dead_letter(items[0].record, f"rejected: {error.reason}")
                    return
                await self._one_by_one(items)
                return
            except Exception as error:
                if is_transient(error):
                    if self._stopping.is_set():
                        raise
                    log.warning(
                        "consumer.retrying", extra={"group": self.group_id, "error": repr(error)[:300]}
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                if len(items) == 1:
                    log.exception("consumer.handler_failed", extra={"group": self.group_id})
                    await self._dead_letter(
                        items[0].record, f"handler failed: {type(error).__name__}: {error}"
                    )
                    return
                # Find the one bad event without losing the good ones in its batch.
                await self._one_by_one(items)
                return

    async def _one_by_one(self, items: list[_Item]) -> None:
        for item in items:
            await self._process([item])

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str) -> None:
        reason = reason[:1000]
        headers = [(k, v) for k, v in (record.headers or ()) if not k.startswith("nps-dlq-")]
        headers += [
            (DLQ_REASON, reason.encode()),
            ("nps-dlq-topic", record.topic.encode()),
            ("nps-dlq-partition", str(record.partition).encode()),
            ("nps-dlq-offset", str(record.offset).encode()),
            ("nps-dlq-consumer", self.group_id.encode()),
            ("nps-dlq-at", datetime.now(UTC).isoformat().encode()),
        ]
        delay = 0.2
        while True:
            try:
                await self._producer.send_and_wait(
                    dlq(record.topic), record.value or b"", key=record.key, headers=headers
                )
                break
            except KafkaError as error:
                log.warning("dlq.retrying", extra={"topic": record.topic, "error": repr(error)[:300]})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        short_reason = reason.split(":", 1)[0][:60]
        self._metrics.dead_lettered.labels(record.topic, short_reason).inc()
        self._metrics.consumed.labels(record.topic, "dead_lettered").inc()
        log.warning(
            "consumer.dead_lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason,
            },
        )
