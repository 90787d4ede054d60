"""Shared fixtures: the real embedded servers (Postgres, Tansu, SMTP sink) for the whole session,
and in-process service runtimes built by the same composition root as production.

Tiers are marked by folder: tests/unit -> ``unit``, tests/integration -> ``integration``,
tests/e2e -> ``e2e``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.common.app import create_app
from libs.common.config import ServiceSettings
from libs.common.db import make_engine
from libs.common.dead_letters import DeadLetter, open_copies, read_topic_tail
from libs.common.events import APIKEY_CREATED, TENANT_CREATED, ApiKeyCreated, TenantCreated, new_event
from libs.common.kafka import ensure_topics
from libs.common.service import Runtime, ServiceDefinition
from libs.common.tenancy import TENANCY_HANDLERS, generate_api_key
from libs.common.topics import ALL_TOPICS
from libs.devstack.kafka import EmbeddedKafka
from libs.devstack.pg import EmbeddedPostgres
from libs.devstack.ports import free_port
from libs.devstack.smtp_sink import SmtpSink

S = TypeVar("S", bound=ServiceSettings)

#: Consumer-group timing the tests' services get: the production defaults. A 3 s session (Tansu
#: holds a JoinGroup for half of it) saved seconds a join, but on a loaded two-core CI run members
#: kept missing it and the survey's group rebalanced without end (no email within 20 s).
CONSUMER_GROUP_SETTINGS: dict[str, int] = {}
#: Shared services kept running at once, the most recently used. Each one polls its outbox and
#: fetches for each of its consumer groups all the time, in the event loop the tests run in: with
#: every settings variant of the session kept (dozens of services), the idle ones took most of a
#: core by the end of the suite, and the CPU-heavy tests late in it ran many times slower than
#: alone (the 500-person office, the http+kafka concurrency test). One used again after it was
#: stopped is started again, a migration check and a group join (1.5 s).
SHARED_SERVICES_KEPT = 8


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in ("unit", "integration", "e2e"):
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    broker = EmbeddedKafka(free_port(), tmp_path_factory.mktemp("kafka"))
    await broker.start()
    try:
        await ensure_topics(broker.bootstrap, ALL_TOPICS)
        yield broker.bootstrap
    finally:
        await broker.stop()


@dataclass
class Mailbox:
    directory: Path
    url: str


@pytest.fixture(scope="session")
def smtp_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mailbox]:
    directory = tmp_path_factory.mktemp("mail")
    sink = SmtpSink(directory)
    sink.start()
    try:
        yield Mailbox(directory, sink.url)
    finally:
        sink.stop()


@dataclass
class ServiceUnderTest:
    runtime: Runtime
    client: httpx.AsyncClient


@dataclass
class TestTenant:
    __test__ = False  # a fixture value, not a test class

    tenant_id: str
    name: str
    api_key: str
    owner_email: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


StartService = Callable[..., Awaitable[ServiceUnderTest]]


@pytest.fixture(scope="session")
async def _service_pool(
    pg_url: str, kafka_bootstrap: str, smtp_sink: Mailbox
) -> AsyncIterator[tuple[dict[str, ServiceUnderTest], list[ServiceUnderTest]]]:
    # A service started with the same settings is shared by the tests of a session (up to
    # SHARED_SERVICES_KEPT of them), rather than started and its groups joined for every test; tests
    # keep apart by using unique tenants. ``shared`` is in the order of last use.
    shared: dict[str, ServiceUnderTest] = {}
    everything: list[ServiceUnderTest] = []
    yield shared, everything
    # All at once: each waits for its consumers to leave their groups.
    await asyncio.gather(*(_stop(under_test) for under_test in reversed(everything)))


async def _stop(under_test: ServiceUnderTest) -> None:
    await under_test.client.aclose()
    await under_test.runtime.stop()


async def _make_room(
    shared: dict[str, ServiceUnderTest], everything: list[ServiceUnderTest], *, in_use: set[str]
) -> None:
    """Stop the least recently used shared services, none the current test has used, until one
    more fits in SHARED_SERVICES_KEPT."""
    idle = [key for key in shared if key not in in_use]
    retired = [shared.pop(key) for key in idle[: max(0, len(shared) + 1 - SHARED_SERVICES_KEPT)]]
    for under_test in retired:
        everything.remove(under_test)
    await asyncio.gather(*(_stop(under_test) for under_test in retired))


@pytest.fixture
async def start_service(
    pg_url: str,
    kafka_bootstrap: str,
    smtp_sink: Mailbox,
    _service_pool: tuple[dict[str, ServiceUnderTest], list[ServiceUnderTest]],
) -> AsyncIterator[StartService]:
    """Start a service in-process against the real servers: ``await start_service(build, Settings)``.

    Settings can be overridden by keyword. The runtime is migrated and started exactly as
    ``python -m services.<name>`` does. The same build and overrides give the same running service
    for the whole session; pass ``fresh=True`` for a private one, stopped after the test.
    """
    shared, everything = _service_pool
    private: list[ServiceUnderTest] = []
    in_use: set[str] = set()

    async def start(
        build: Callable[[S], ServiceDefinition],
        settings_class: type[S],
        *,
        fresh: bool = False,
        **overrides: Any,
    ) -> ServiceUnderTest:
        pool_key = f"{build.__module__}.{build.__qualname__}:{settings_class.__qualname__}"
        pool_key += repr(sorted(overrides.items()))
        if not fresh and pool_key in shared:
            in_use.add(pool_key)
            shared[pool_key] = shared.pop(pool_key)  # the most recently used, last
            return shared[pool_key]
        if not fresh:
            await _make_room(shared, everything, in_use=in_use)
        values: dict[str, Any] = {
            "database_url": pg_url,
            "kafka_bootstrap_servers": kafka_bootstrap,
            "smtp_url": smtp_sink.url,
            "nps_env": "test",
            "admin_token": "test-admin-token-" + uuid.uuid4().hex,
            "outbox_poll_seconds": 0.1,
            # Cohort draws use the real clock; tests that want one call run_cohorts with their own.
            "cohort_check_seconds": 3600,
            **CONSUMER_GROUP_SETTINGS,
            # A private service must not join the shared one's consumer groups: it would take over
            # partitions, and its departure would stall them while the broker rebalances.
            **({"kafka_group_prefix": f"test-{uuid.uuid4().hex[:12]}"} if fresh else {}),
            **overrides,
        }
        settings = settings_class.model_validate(values)
        definition = build(settings)
        runtime = Runtime(definition, settings)
        await asyncio.to_thread(runtime.migrate)
        await runtime.start()
        app = create_app(runtime)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        under_test = ServiceUnderTest(runtime, client)
        if fresh:
            private.append(under_test)
        else:
            in_use.add(pool_key)
            shared[pool_key] = under_test
            everything.append(under_test)
        return under_test

    yield start
    for under_test in reversed(private):
        await under_test.client.aclose()
        await under_test.runtime.stop()


async def provision_tenant(runtime: Runtime, *others: Runtime, name: str | None = None) -> TestTenant:
    """Give a service (and any others) its copy of a new tenant and key, as the tenancy events would."""
    name = name or f"tenant-{uuid.uuid4().hex[:8]}"
    tenant_id = uuid.uuid4()
    owner = f"owner-{uuid.uuid4().hex[:6]}@{name}.example"
    key = generate_api_key()
    now = datetime.now(UTC)
    events = [
        new_event(
            TENANT_CREATED,
            tenant_id=str(tenant_id),
            source="/tests",
            subject=str(tenant_id),
            data=TenantCreated(tenant_id=tenant_id, name=name, owner_email=owner, created_at=now),
        ),
        new_event(
            APIKEY_CREATED,
            tenant_id=str(tenant_id),
            source="/tests",
            subject=str(tenant_id),
            data=ApiKeyCreated(key_id=key.key_id, tenant_id=tenant_id, key_hash=key.key_hash, created_at=now),
        ),
    ]
    for each in (runtime, *others):
        async with each.database.uow() as uow:
            for event in events:
                await TENANCY_HANDLERS[event.type](event, uow)
            await uow.commit()
    return TestTenant(str(tenant_id), name, key.secret, owner)


async def eventually(
    check: Callable[[], Awaitable[Any]], *, within: float = 20.0, interval: float = 0.1
) -> Any:
    """Poll ``check`` until it returns something truthy (no sleeping for a fixed time)."""
    deadline = asyncio.get_running_loop().time() + within
    last: Any = None
    while True:
        last = await check()
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value: {last!r}")
        await asyncio.sleep(interval)


async def produce(
    bootstrap: str,
    topic: str,
    value: bytes,
    *,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Write one raw message, as an outside producer would."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers or [])
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str, topic: str, predicate: Callable[[Any], bool], *, count: int = 1, within: float = 30.0
) -> list[Any]:
    """Read ``topic`` from the beginning until ``count`` records match ``predicate``; return them."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    # Assigned partitions, no consumer group: nothing to join, so reading starts at once.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    await consumer.topics()  # fetches the cluster metadata that partitions_for_topic reads
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    matched: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + within
        while len(matched) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"{len(matched)} of {count} matching records on {topic} within {within}s"
                )
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                matched.extend(record for record in records if predicate(record))
    finally:
        await consumer.stop()
    return matched


async def read_dead_letters(
    bootstrap: str,
    database: str | AsyncEngine,
    topic: str,
    predicate: Callable[[DeadLetter], bool],
    *,
    count: int = 1,
    within: float = 30.0,
) -> list[DeadLetter]:
    """Read the DLQ ``topic`` as an operator does (``nps dead-letters``): each copy opened with its
    key from the dead-lettering service's schema, until ``count`` opened copies match."""
    engine = make_engine(database, pool_size=1) if isinstance(database, str) else database
    deadline = asyncio.get_running_loop().time() + within
    try:
        while True:
            records = await read_topic_tail(bootstrap, topic, last=100_000)
            matched = [copy for copy in await open_copies(engine, records) if predicate(copy)]
            if len(matched) >= count:
                return matched
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(matched)} of {count} matching copies on {topic} within {within}s")
            await asyncio.sleep(0.3)
    finally:
        if isinstance(database, str):
            await engine.dispose()


async def metric_value(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    """One sample of a service's ``/metrics``, as Prometheus scrapes it; 0 if it is not there yet.
    Counters are process-wide, so tests compare a value before and after what they do."""
    from prometheus_client.parser import text_string_to_metric_families

    text = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
