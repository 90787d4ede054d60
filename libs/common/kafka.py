"""Kafka machinery: the producer, topic creation, and the consumer runner with its DLQ.

The runner's contract, which every service relies on:

* an offset is committed only after the database transaction holding the message's effects has
  committed, so a crash at any point redelivers rather than loses;
* each event is processed at most once per consumer, by event id (``processed_events``), so a
  redelivery has no second effect;
* a message that cannot be decoded, fails validation, or is rejected by its handler goes to
  ``<topic>.dlq`` with the reason in its headers, is counted, and the runner carries on;
* a transient fault (database or broker unreachable) is retried with backoff, never dead-lettered;
* a message too large to copy whole into the DLQ is dead-lettered as a truncated copy with its
  original size, topic, partition and offset, so that one huge message never stalls a group;
* a DLQ copy's value is sealed under a key of its own, kept in this service's ``dlq_keys`` with
  whose message it is, so that erasing the customer makes the copy unreadable
  (:mod:`libs.common.sealing`; read copies with ``nps dead-letters``);
* an event of a tenant this service has not heard of is held (``held_events``) until the tenant's
  own ``tenant.created`` arrives, then handled in arrival order; after ``unknown_tenant_hold``
  it is dead-lettered with the reason. Nothing is acted on for a tenant that does not exist, and
  nothing of a tenant created a moment ago is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from sqlalchemy import Uuid, cast, delete, func, insert, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from libs.common import sealing, tracing
from libs.common.config import ServiceSettings
from libs.common.db import Database, UnitOfWork
from libs.common.events import (
    APIKEY_CREATED,
    APIKEY_REVOKED,
    TENANT_CREATED,
    TENANT_UPDATED,
    Contract,
    Event,
    InvalidCode,
    InvalidEvent,
    decode_kafka,
    decode_structured,
)
from libs.common.metrics import ServiceMetrics
from libs.common.topics import dlq

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[Event[Contract]], UnitOfWork[Any]], Awaitable[None]]
EventHandler = Callable[[Event[Any], UnitOfWork[Any]], Awaitable[None]]

DLQ_REASON = "nps-dlq-reason"
DLQ_CODE = "nps-dlq-code"
#: Why a message was dead-lettered: a closed set, for the metric's label and for alerting. What
#: was wrong with an undecodable or invalid event is its InvalidEvent's code (libs/common/events.py).
DlqCode = Literal["too_large", InvalidCode, "rejected", "handler_failed", "unknown_tenant"]
DLQ_CODES: frozenset[str] = frozenset(
    code for part in get_args(DlqCode) for code in (get_args(part) or (part,))
)
#: A DLQ copy keeps the whole message up to this size; beyond it, the first DLQ_COPY_BYTES.
DLQ_WHOLE_BYTES = 900 * 1024
DLQ_COPY_BYTES = 64 * 1024
_DLQ_HEADER_BYTES = 8 * 1024
#: The registry's own events: they make a tenant known, so they are never held for one.
TENANCY_TYPES = frozenset({TENANT_CREATED, TENANT_UPDATED, APIKEY_CREATED, APIKEY_REVOKED})
# Deadlocks and serialization failures are worth a retry; so is anything about the connection.
_RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "08000", "08003", "08006"}


class RejectEvent(Exception):
    """Raised by a handler for an event that is well-formed but can never be processed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def dlq_label(code: str) -> str:
    """The DLQ metric's ``reason`` label: only ever one of :data:`DLQ_CODES`, never words."""
    if code not in DLQ_CODES:
        raise ValueError(f"not a DLQ code: {code[:40]!r}")
    return code


def is_transient(error: BaseException) -> bool:
    if isinstance(error, OperationalError | InterfaceError | OSError | TimeoutError | KafkaConnectionError):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        return sqlstate in _RETRYABLE_SQLSTATES
    return False


def kafka_client_options(settings: ServiceSettings | str) -> dict[str, Any]:
    """Where the brokers are and how to talk to them: the keywords every aiokafka client takes.

    Every producer, consumer and admin client the platform builds gets them from here, so TLS and
    SASL are configured once (``KAFKA_SECURITY_PROTOCOL`` and its siblings, checked when the
    settings are built). A bare bootstrap string is a plaintext broker (the embedded one, tests).
    """
    if isinstance(settings, str):
        return {"bootstrap_servers": settings, "security_protocol": "PLAINTEXT"}
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": protocol,
    }
    if protocol in ("SSL", "SASL_SSL"):
        # Without a CA file, the system's CAs (a managed Kafka with a public certificate).
        options["ssl_context"] = create_ssl_context(
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
        )
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        assert settings.kafka_sasl_password is not None  # the settings refuse SASL without one
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def make_producer(settings: ServiceSettings, service: str) -> AIOKafkaProducer:
    # Tansu, the embedded broker, has no InitProducerId; idempotence is for real Kafka only.
    # Exactly-once effects come from the outbox plus idempotent consumers, not from the producer.
    return AIOKafkaProducer(
        **kafka_client_options(settings),
        client_id=settings.kafka_client_id or f"nps-{service}",
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
    )


async def ensure_topics(
    settings: ServiceSettings | str, wanted: dict[str, int], replication: int = 1
) -> None:
    """Create missing topics; existing ones are left as they are.

    ``settings`` is a service's settings (its brokers, TLS and SASL) or a plaintext bootstrap string.
    """
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
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

    async def handle(events: list[Event[Contract]], uow: UnitOfWork[Any]) -> None:
        for event in events:
            handler = handlers.get(event.type)
            if handler is not None:
                await handler(event, uow)

    return handle


UnknownTenantPolicy = Literal["hold", "reject"]


@dataclass
class ConsumerSpec:
    """One consumer group of a service: which topics, and the batch handler for their events.

    ``unknown_tenants``: ``hold`` an event whose tenant this service has not heard of yet (its
    copy of the registry arrives on another topic, maybe later), or ``reject`` it at once to the
    DLQ, for the service that owns the registry (the trigger), where unknown means nonexistent."""

    name: str
    topics: Sequence[str]
    handle: BatchHandler
    allowed_types: frozenset[str] | None = None
    unknown_tenants: UnknownTenantPolicy = "hold"


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
        self.unknown_tenant_hold = timedelta(seconds=settings.unknown_tenant_hold_seconds)
        self._max_message_bytes = settings.consumer_max_message_bytes
        self._held_waiting = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            *self.spec.topics,
            **kafka_client_options(self._settings),
            group_id=self.group_id,
            client_id=f"{self.group_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._settings.consumer_batch_size,
            fetch_max_wait_ms=self._settings.kafka_fetch_max_wait_ms,
            # Frequent heartbeats make a restarted member rejoin in seconds rather than a session.
            session_timeout_ms=self._settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self._settings.kafka_heartbeat_interval_ms,
        )
        self._consumer = consumer
        await consumer.start()
        self.started.set()
        log.info("consumer.started", extra={"group": self.group_id, "topics": list(self.spec.topics)})
        releasing = asyncio.create_task(self._release_held_loop(), name=f"held-{self.group_id}")
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
            releasing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await releasing
            await consumer.stop()
            log.info("consumer.stopped", extra={"group": self.group_id})

    async def _handle_batches(
        self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        items: list[_Item] = []
        for records in batches.values():
            for record in records:
                size = len(record.value or b"")
                if size > self._max_message_bytes:
                    # Not even decoded: a message this size is a mistake or an attack, not an event.
                    await self._dead_letter(
                        record,
                        "too_large",
                        f"message of {size} bytes exceeds CONSUMER_MAX_MESSAGE_BYTES "
                        f"({self._max_message_bytes})",
                    )
                    continue
                try:
                    event = decode_kafka(record.headers, record.value, allowed_types=self.spec.allowed_types)
                    # A tenantid that is no tenant id (a UUID) can never become known: invalid at once.
                    _ = event.tenant
                except InvalidEvent as error:
                    await self._dead_letter(record, error.code, error.reason)
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
                with _consume_span(self.group_id, items):
                    async with self._database.uow() as uow:
                        fresh, held, unknown = await self._handle_known(uow, items)
                        await uow.commit()
                if held:
                    self._held_waiting.set()
                fresh_ids = {(event.tenant_id, event.id) for event in fresh}
                for item in items:
                    key = (item.event.tenant_id, item.event.id)
                    outcome = "processed" if key in fresh_ids else "held" if key in held else "duplicate"
                    if key in unknown:
                        outcome = "dead_lettered"
                    self._metrics.consumed.labels(item.record.topic, outcome).inc()
                for item in items:
                    if (item.event.tenant_id, item.event.id) in unknown:
                        await self._dead_letter(
                            item.record,
                            "unknown_tenant",
                            f"tenantid: unknown tenant {item.event.tenant_id!r}: no such tenant exists",
                            count_consumed=False,
                        )
                return
            except RejectEvent as error:
                if len(items) == 1:
                    await self._dead_letter(items[0].record, "rejected", f"rejected: {error.reason}")
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
                        items[0].record, "handler_failed", f"handler failed: {type(error).__name__}: {error}"
                    )
                    return
                # Find the one bad event without losing the good ones in its batch.
                await self._one_by_one(items)
                return

    async def _one_by_one(self, items: list[_Item]) -> None:
        for item in items:
            await self._process([item])

    async def _handle_known(
        self, uow: UnitOfWork[Any], items: list[_Item]
    ) -> tuple[list[Event[Contract]], set[tuple[str, str]], set[tuple[str, str]]]:
        """Handle the batch's events whose tenant is known; hold (or, for the registry's owner,
        reject) the others. Returns (handled, held, unknown-to-reject) event keys.

        The registry's own events go first, so that a tenant created in this very batch is known
        to the rest of it. An event of a tenant that still has events held is held too, behind
        them: a tenant's events are handled in the order they arrived."""
        tenancy = [item.event for item in items if item.event.type in TENANCY_TYPES]
        scoped = [item for item in items if item.event.type not in TENANCY_TYPES]
        fresh = await uow.claim(self.spec.name, tenancy)
        if fresh:
            await self.spec.handle(fresh, uow)
        tenant_ids = {item.event.tenant_id for item in scoped}
        known = await _known_tenants(uow, tenant_ids)
        waiting = await _tenants_with_held(uow, self.spec.name, known)
        held: set[tuple[str, str]] = set()
        unknown: set[tuple[str, str]] = set()
        ready: list[Event[Contract]] = []
        rows = []
        for item in scoped:
            key = (item.event.tenant_id, item.event.id)
            if item.event.tenant_id in known and item.event.tenant_id not in waiting:
                ready.append(item.event)
            elif self.spec.unknown_tenants == "reject" and item.event.tenant_id not in known:
                unknown.add(key)
            elif key not in held:
                held.add(key)
                rows.append(_held_row(self.spec.name, item))
        if rows:
            await uow.session.execute(insert(uow.tables.held_events), rows)
            log.info("consumer.held", extra={"group": self.group_id, "events": len(rows)})
        handled = await uow.claim(self.spec.name, ready)
        if handled:
            await self.spec.handle(handled, uow)
        return fresh + handled, held, unknown

    async def _release_held_loop(self) -> None:
        """Hand held events to the handler once their tenant is known; dead-letter those whose
        tenant never came. Every second while anything is held; woken when something is."""
        self._held_waiting.set()  # held before a restart
        delay = 1.0
        while not self._stopping.is_set():
            self._held_waiting.clear()
            try:
                remaining = await self.release_held()
                self._metrics.held_events.labels(self.spec.name).set(remaining)
                delay = 1.0
            except Exception as error:
                log.warning(
                    "consumer.release_retrying", extra={"group": self.group_id, "error": repr(error)[:300]}
                )
                remaining = 1
                delay = min(delay * 2, 10.0)
            if remaining:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._held_waiting.wait(), 30)

    async def release_held(self, *, now: datetime | None = None, limit: int = 500) -> int:
        """One pass over the held events: hand those of tenants now known to the handler, oldest
        first; dead-letter those whose tenant did not come in time. Returns how many are still held.

        Known and expired are looked up apart, so that a flood of events for tenants that never
        come cannot hold back those of a tenant that did."""
        table = self._database.tables.held_events
        tenants = self._database.tables.tenants
        now = now or datetime.now(UTC)
        mine = table.c.consumer == self.spec.name
        known = select(tenants.c.id).where(tenants.c.id == cast(table.c.tenant_id, Uuid)).exists()
        async with self._database.sessions() as session:
            ready = list(
                await session.scalars(select(table.c.id).where(mine, known).order_by(table.c.id).limit(limit))
            )
            expired = list(
                await session.scalars(
                    select(table.c.id)
                    .where(mine, ~known, table.c.held_at < now - self.unknown_tenant_hold)
                    .order_by(table.c.id)
                    .limit(limit)
                )
            )
        if ready:
            try:
                await self._release(ready)
            except Exception as error:
                if is_transient(error):
                    raise
                # Find the one the handler refuses without holding back the others.
                for row_id in ready:
                    await self._release_one(row_id)
            log.info("consumer.released", extra={"group": self.group_id, "events": len(ready)})
        if expired:
            await self._dead_letter_held(expired, "unknown_tenant", None)
        async with self._database.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(table).where(mine)) or 0)

    async def _release(self, row_ids: list[int]) -> None:
        table = self._database.tables.held_events
        async with self._database.uow() as uow:
            rows = (
                await uow.session.execute(
                    delete(table).where(table.c.id.in_(row_ids)).returning(table.c.id, table.c.payload)
                )
            ).all()
            events = [decode_structured(row.payload) for row in sorted(rows, key=lambda row: row.id)]
            carriers = [tracing.carrier_of(event.envelope) for event in events]
            with tracing.consuming(f"{self.group_id} release", carriers):
                handled = await uow.claim(self.spec.name, events)
                if handled:
                    await self.spec.handle(handled, uow)
                await uow.commit()

    async def _release_one(self, row_id: int) -> None:
        try:
            await self._release([row_id])
        except RejectEvent as error:
            await self._dead_letter_held([row_id], "rejected", f"rejected: {error.reason}")
        except Exception as error:
            if is_transient(error):
                raise
            log.exception("consumer.handler_failed", extra={"group": self.group_id})
            await self._dead_letter_held(
                [row_id], "handler_failed", f"handler failed: {type(error).__name__}: {error}"
            )

    async def _dead_letter_held(self, row_ids: list[int], code: DlqCode, reason: str | None) -> None:
        """Copy held events into their topic's DLQ, all at once, then forget them in one statement."""
        table = self._database.tables.held_events
        async with self._database.sessions() as session:
            rows = (await session.execute(select(table).where(table.c.id.in_(row_ids)))).all()
        hold = int(self.unknown_tenant_hold.total_seconds())
        await asyncio.gather(
            *(
                self._send_dead_letter(
                    topic=row.topic,
                    partition=row.partition,
                    offset=row.offset,
                    key=row.key,
                    value=row.payload,
                    original_headers=[],
                    code=code,
                    reason=reason
                    or (
                        f"tenantid: unknown tenant {row.tenant_id!r}: it did not become known within "
                        f"{hold} s (UNKNOWN_TENANT_HOLD_SECONDS)"
                    ),
                )
                for row in rows
            )
        )
        async with self._database.sessions() as session, session.begin():
            await session.execute(delete(table).where(table.c.id.in_([row.id for row in rows])))
        for row in rows:
            self._metrics.consumed.labels(row.topic, "dead_lettered").inc()

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], code: DlqCode, reason: str, *, count_consumed: bool = True
    ) -> None:
        await self._send_dead_letter(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value or b"",
            original_headers=list(record.headers or ()),
            code=code,
            reason=reason,
        )
        if count_consumed:
            self._metrics.consumed.labels(record.topic, "dead_lettered").inc()

    async def _produce_dead_letter(
        self, topic: str, offset: int, copy: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        """Publish the copy to ``<topic>.dlq``, waiting out a broker that is away. A copy the broker
        refuses as such is sent again without its payload; a refusal of that too is logged."""
        delay = 0.2
        while True:
            try:
                await self._producer.send_and_wait(dlq(topic), copy, key=key, headers=headers)
                break
            except KafkaError as error:
                if not getattr(error, "retriable", False) and not isinstance(error, KafkaConnectionError):
                    if copy:
                        # Refused as such (e.g. a broker with a smaller size limit): the facts alone.
                        log.warning("dlq.copy_refused", extra={"topic": topic, "error": repr(error)[:300]})
                        copy = b""
                        headers = [h for h in headers if h[0] != "nps-dlq-truncated"]
                        headers.append(("nps-dlq-truncated", b"true"))
                        continue
                    log.error(
                        "dlq.refused", extra={"topic": topic, "offset": offset, "error": repr(error)[:300]}
                    )
                    break
                log.warning("dlq.retrying", extra={"topic": topic, "error": repr(error)[:300]})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _seal(
        self, topic: str, copy: bytes, original_headers: list[tuple[str, bytes]]
    ) -> tuple[bytes, list[tuple[str, bytes]]]:
        """The copy sealed under a new key, kept (committed) before the copy is sent: the broker never
        holds a copy whose key is not stored. The key row names whose message it is, so that an
        erasure of that customer deletes it. A database that is away is waited out."""
        whose = sealing.attribute(copy, original_headers)
        key_id, key = uuid.uuid4(), sealing.new_key()
        table = self._database.tables.dlq_keys
        row = {
            "id": key_id,
            "key": key,
            "tenant_id": whose.tenant_id,
            "customer_id": whose.customer_id,
            "topic": topic,
        }
        delay = 0.2
        while True:
            try:
                async with self._database.sessions() as session, session.begin():
                    await session.execute(insert(table), [row])
                break
            except Exception as error:
                if not is_transient(error) or self._stopping.is_set():
                    raise
                log.warning("dlq.key_retrying", extra={"topic": topic, "error": repr(error)[:300]})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        reference = sealing.key_reference(str(table.schema), key_id)
        return sealing.seal(key, key_id, copy), [
            (sealing.SEALED_HEADER, sealing.SCHEME.encode()),
            (sealing.KEY_HEADER, reference),
        ]

    async def _send_dead_letter(
        self,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes,
        original_headers: list[tuple[str, bytes]],
        code: DlqCode,
        reason: str,
    ) -> None:
        """Copy a message into ``<topic>.dlq`` with why, and where it came from. What fits: a
        message too large for the broker is copied truncated, with its original size, so that it
        is dead-lettered and the group moves on instead of retrying it forever."""
        reason = reason[:1000]
        size = len(value)
        kept = [
            (k, v)
            for k, v in original_headers
            if not k.startswith("nps-dlq-") and len(k) + len(v) <= _DLQ_HEADER_BYTES
        ]
        truncated = size + sum(len(k) + len(v) for k, v in kept) > DLQ_WHOLE_BYTES
        headers = [
            *kept,
            (DLQ_REASON, reason.encode()),
            (DLQ_CODE, code.encode()),
            ("nps-dlq-topic", topic.encode()),
            ("nps-dlq-partition", str(partition).encode()),
            ("nps-dlq-offset", str(offset).encode()),
            ("nps-dlq-consumer", self.group_id.encode()),
            ("nps-dlq-at", datetime.now(UTC).isoformat().encode()),
            ("nps-dlq-original-size", str(size).encode()),
            ("nps-dlq-truncated", b"true" if truncated else b"false"),
        ]
        copy = value[:DLQ_COPY_BYTES] if truncated else value
        if key is not None and len(key) > _DLQ_HEADER_BYTES:
            key = key[:_DLQ_HEADER_BYTES]
        if copy:
            copy, sealing = await self._seal(topic, copy, original_headers)
            headers.extend(sealing)
        await self._produce_dead_letter(topic, offset, copy, key, headers)
        self._metrics.dead_lettered.labels(topic, dlq_label(code)).inc()
        log.warning(
            "consumer.dead_lettered",
            extra={"topic": topic, "partition": partition, "offset": offset, "code": code, "reason": reason},
        )


def _consume_span(group: str, items: list[_Item]) -> contextlib.AbstractContextManager[tracing.Span]:
    """The batch's span: its events' trace contexts, and only bounded, impersonal attributes."""
    first = items[0]
    tenants = {item.event.tenant_id for item in items}
    types = {item.event.type for item in items}
    attributes: dict[str, tracing.AttributeValue] = {
        "messaging.system": "kafka",
        "messaging.consumer.group.name": group,
        "messaging.destination.name": first.record.topic,
        "messaging.destination.partition.id": str(first.record.partition),
        "messaging.batch.message_count": len(items),
    }
    if len(tenants) == 1:
        attributes["nps.tenant_id"] = first.event.tenant_id
    if len(types) == 1:
        attributes["cloudevents.event_type"] = first.event.type
    # A closed set (the contracts' types), so bounded however large the batch.
    attributes["nps.event_types"] = sorted(types)
    carriers = [tracing.carrier_of(item.event.envelope) for item in items]
    return tracing.consuming(f"{group} process", carriers, attributes=attributes)


async def _known_tenants(uow: UnitOfWork[Any], tenant_ids: set[str]) -> set[str]:
    if not tenant_ids:
        return set()
    table = uow.tables.tenants
    rows = await uow.session.scalars(
        select(table.c.id).where(table.c.id.in_([uuid.UUID(t) for t in tenant_ids]))
    )
    return {str(tenant_id) for tenant_id in rows}


async def _tenants_with_held(uow: UnitOfWork[Any], consumer: str, tenant_ids: set[str]) -> set[str]:
    if not tenant_ids:
        return set()
    table = uow.tables.held_events
    rows = await uow.session.scalars(
        select(table.c.tenant_id)
        .distinct()
        .where(table.c.consumer == consumer, table.c.tenant_id.in_(sorted(tenant_ids)))
    )
    return set(rows)


def _held_row(consumer: str, item: _Item) -> dict[str, Any]:
    return {
        "consumer": consumer,
        "tenant_id": item.event.tenant_id,
        "event_id": item.event.id,
        "topic": item.record.topic,
        "partition": item.record.partition,
        "offset": item.record.offset,
        "key": item.record.key,
        "payload": item.event.envelope.to_json(),
    }
