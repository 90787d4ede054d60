"""Reading DLQ copies back: each sealed copy opened with its key from the dead-lettering service's
``dlq_keys`` (libs/common/sealing.py), or marked ``erased`` when the key is gone (its customer was
erased, or it was a copy nobody could be told from and its key expired). ``nps dead-letters`` prints
them; tests read them the same way.
"""

from __future__ import annotations

import asyncio
import base64
import re
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.common import sealing
from libs.common.config import ServiceSettings
from libs.common.db import add_common_tables
from libs.common.kafka import kafka_client_options

CopyState = Literal["plain", "opened", "erased"]
_SCHEMA = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: dict[str, bytes]
    #: The original (or its first 64 KiB); empty when ``erased``.
    value: bytes
    #: ``plain``: not sealed (empty, or copied before sealing); ``opened``; ``erased``: key gone.
    state: CopyState

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": _text(self.key) if self.key is not None else None,
            "state": self.state,
            "headers": {name: _text(value) for name, value in self.headers.items()},
            "value": _text(self.value) if self.state != "erased" else None,
        }


async def open_copies(
    engine: AsyncEngine, records: Sequence[ConsumerRecord[bytes, bytes]]
) -> list[DeadLetter]:
    """The records opened, in order: one query per service schema for all their keys."""
    wanted: dict[str, set[uuid.UUID]] = defaultdict(set)
    for record in records:
        reference = _reference(record)
        if reference is not None:
            wanted[reference[0]].add(reference[1])
    keys: dict[tuple[str, uuid.UUID], bytes] = {}
    async with engine.connect() as connection:
        for schema, ids in wanted.items():
            table = add_common_tables(MetaData(schema=schema)).dlq_keys
            rows = await connection.execute(select(table.c.id, table.c.key).where(table.c.id.in_(ids)))
            keys.update({(schema, row.id): row.key for row in rows})
    return [_opened(record, keys) for record in records]


def _opened(record: ConsumerRecord[bytes, bytes], keys: dict[tuple[str, uuid.UUID], bytes]) -> DeadLetter:
    headers = {name: value for name, value in record.headers or ()}
    value = record.value or b""
    reference = _reference(record)
    state: CopyState = "plain"
    if reference is not None and value:
        key = keys.get(reference)
        if key is None:
            value, state = b"", "erased"
        else:
            value, state = sealing.unseal(key, reference[1], value), "opened"
    return DeadLetter(record.topic, record.partition, record.offset, record.key, headers, value, state)


def _reference(record: ConsumerRecord[bytes, bytes]) -> tuple[str, uuid.UUID] | None:
    headers = dict(record.headers or ())
    if sealing.SEALED_HEADER not in headers or sealing.KEY_HEADER not in headers:
        return None
    reference = sealing.parse_key_reference(headers[sealing.KEY_HEADER])
    if reference is None or not _SCHEMA.match(reference[0]):
        return None
    return reference


async def read_topic_tail(
    settings: ServiceSettings | str, topic: str, *, last: int, within: float = 10.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """The last ``last`` records of each of ``topic``'s partitions (no consumer group, nothing
    committed), oldest first within a partition. ``settings``: a service's (its brokers, TLS and
    SASL), or a plaintext bootstrap string."""
    consumer = AIOKafkaConsumer(**kafka_client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            raise LookupError(f"no topic {topic!r} on the broker")
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        for partition in partitions:
            consumer.seek(partition, max(starts[partition], ends[partition] - last))
        records: list[ConsumerRecord[bytes, bytes]] = []
        remaining = {p for p in partitions if ends[p] > starts[p]}
        deadline = asyncio.get_running_loop().time() + within
        while remaining and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(*remaining, timeout_ms=500)
            for partition, batch in batches.items():
                records.extend(record for record in batch if record.offset < ends[partition])
                if batch and batch[-1].offset + 1 >= ends[partition]:
                    remaining.discard(partition)
        if remaining:
            raise TimeoutError(f"{topic}: not read to its end within {within:g} s")
        return records
    finally:
        await consumer.stop()


def _text(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode()
