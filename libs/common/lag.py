"""Consumer lag: for each of a service's consumer groups, how many messages of each partition the
group has not yet committed, as ``nps_<service>_consumer_lag_messages{group, topic, partition}``.

It is measured off the hot path, by a background job of the shared runner every few seconds, with
clients of its own: the group's committed offsets (OffsetFetch through the admin client) against
each partition's end offset. Every replica of a service reports the whole group, so a dashboard
takes ``max by (group, topic, partition)`` across replicas, never the sum.

The end offset is the larger of two answers, because the embedded broker gets one of them wrong.
Tansu 0.6 answers ListOffsets (latest) with the *base offset of the partition's last record batch
plus one*, not the offset after its last record: after a batch of 10 records at offsets 6..15 it
says 7, not 16, so a lag from it alone under-counts by up to a batch. The high watermark in a
Fetch response is right on Tansu and on Kafka, so the job fetches each non-empty partition's last
batch (from the reported end minus one: at most one batch comes back) and keeps the larger value.
On Kafka both agree and the fetch costs one small request per refresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Gauge

from libs.common.config import ServiceSettings
from libs.common.jobs import Job
from libs.common.kafka import kafka_client_options

#: Often enough for a lag alert over a few minutes, rare enough to cost the broker nothing.
LAG_EVERY_SECONDS = 5.0
#: How long one refresh waits for the fetches of last batches before it keeps the ListOffsets answer.
_FETCH_WAIT_SECONDS = 3.0

_gauges: dict[str, Gauge] = {}


def lag_gauge(service: str) -> Gauge:
    """One gauge per process and service: Prometheus refuses to register a name twice."""
    if service not in _gauges:
        _gauges[service] = Gauge(
            f"nps_{service}_consumer_lag_messages",
            "Messages of a partition the consumer group has not committed yet (end offset minus the "
            "group's committed offset); every replica reports the whole group",
            ["group", "topic", "partition"],
        )
    return _gauges[service]


@dataclass(frozen=True)
class Group:
    """A consumer group as the lag job sees it: the short name on the label, the Kafka group id."""

    name: str
    group_id: str
    topics: Sequence[str]


class ConsumerLagJob(Job):
    """Refreshes the lag gauge of every consumer group of one service."""

    name = "consumer-lag"
    every = LAG_EVERY_SECONDS
    batch_size = 1_000_000  # never "a full batch": one refresh per interval

    def __init__(self, service: str, settings: ServiceSettings, groups: Sequence[Group]) -> None:
        self._settings = settings
        self._groups = list(groups)
        self._gauge = lag_gauge(service)
        self._admin: AIOKafkaAdminClient | None = None
        self._probe: AIOKafkaConsumer | None = None

    async def prepare(self) -> None:
        # The brokers and how to reach them (TLS, SASL) as every other client has them.
        admin = AIOKafkaAdminClient(**kafka_client_options(self._settings))
        # No group: the probe only reads high watermarks of partitions it is told to fetch.
        probe = AIOKafkaConsumer(
            **kafka_client_options(self._settings),
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=1024,
        )
        try:
            await admin.start()
            await probe.start()
        except BaseException:
            await admin.close()
            await probe.stop()
            raise
        self._admin, self._probe = admin, probe

    async def drain(self) -> None:
        if self._probe is not None:
            await self._probe.stop()
        if self._admin is not None:
            await self._admin.close()

    async def run_once(self) -> int:
        lags = await self.measure()
        for (group, tp), lag in lags.items():
            self._gauge.labels(group, tp.topic, str(tp.partition)).set(lag)
        return 0

    async def measure(self) -> dict[tuple[str, TopicPartition], int]:
        """The lag of every partition of every group's topics, keyed by (group name, partition)."""
        if self._admin is None or self._probe is None:
            raise RuntimeError("the lag job is not prepared")
        probe = self._probe
        await probe.topics()  # fresh metadata: a topic may have gained partitions
        partitions = sorted(
            {
                TopicPartition(topic, p)
                for group in self._groups
                for topic in group.topics
                for p in probe.partitions_for_topic(topic) or ()
            }
        )
        if not partitions:
            return {}
        ends = await self.end_offsets(partitions)
        starts = await probe.beginning_offsets(partitions)
        lags: dict[tuple[str, TopicPartition], int] = {}
        for group in self._groups:
            mine = [tp for tp in partitions if tp.topic in group.topics]
            # Partitions named: Tansu cannot answer an OffsetFetch for "every partition" (null).
            committed = await self._admin.list_consumer_group_offsets(group.group_id, partitions=mine)
            for tp in mine:
                found = committed.get(tp)
                # A group that never committed starts from the beginning (auto_offset_reset earliest).
                position = found.offset if found is not None and found.offset >= 0 else starts[tp]
                lags[(group.name, tp)] = max(0, ends[tp] - position)
        return lags

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Each partition's true end offset: max(ListOffsets latest, a fetch's high watermark)."""
        assert self._probe is not None
        probe = self._probe
        listed = await probe.end_offsets(partitions)
        to_fetch = [tp for tp in partitions if listed[tp] > 0]
        if not to_fetch:
            return dict(listed)
        probe.assign(to_fetch)
        for tp in to_fetch:
            probe.seek(tp, listed[tp] - 1)
        probe.resume(*to_fetch)
        seen: set[TopicPartition] = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _FETCH_WAIT_SECONDS
        try:
            while len(seen) < len(to_fetch) and loop.time() < deadline:
                batches = await probe.getmany(*[tp for tp in to_fetch if tp not in seen], timeout_ms=200)
                seen.update(tp for tp, records in batches.items() if records)
        finally:
            # Paused, the probe fetches nothing between refreshes.
            probe.pause(*to_fetch)
        ends = dict(listed)
        for tp in seen:
            highwater = probe.highwater(tp)
            if highwater is not None:
                ends[tp] = max(ends[tp], highwater)
        return ends
