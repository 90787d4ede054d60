"""The live score: how soon an open ``GET /v1/nps/stream`` shows a changed cell. p50/p95/p99 of
200 updates, one after another, next to the raw path underneath from the same run.

    .venv/bin/python -m bench.report_live
    BENCH_UPDATES=1000 .venv/bin/python -m bench.report_live

Measured from ``nps.updated.v1`` published on ``nps.scores`` (as scoring announces a cell) to the
``nps`` event read from the stream: reporting's ``scores`` consumer, its upsert and ``pg_notify``,
the commit, the LISTEN connection and the fan-out, over real HTTP. Not measured: the survey and
scoring before it (``bench.answer_live`` measures the whole way, from the customer's answer).
Postgres, the broker and the reporting service are real servers; the service is a process of its own.

Baselines, same run: the broker alone (publish -> an assigned consumer reads it, fetching as the
services do) and Postgres alone (``pg_notify`` committed -> a LISTEN connection hears it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.alerting_stack import BenchTenant, start_process
from bench.desk_list import ms, quantile
from bench.survey_stack import produce, to_json
from bench.trigger_throughput import wait_ready
from libs.common.config import ServiceSettings
from libs.common.events import (
    APIKEY_CREATED,
    NPS_UPDATED,
    TENANT_CREATED,
    ApiKeyCreated,
    NpsUpdated,
    NpsWindow,
    TenantCreated,
    new_event,
)
from libs.common.kafka import ensure_topics
from libs.common.tenancy import generate_api_key
from libs.common.topics import ALL_TOPICS, SCORES, TENANTS
from libs.devstack.kafka import EmbeddedKafka
from libs.devstack.pg import EmbeddedPostgres
from libs.devstack.ports import free_port

UPDATES = int(os.environ.get("BENCH_UPDATES", "200"))
WARM_UP = 10
TOUCHPOINT = "checkout"


@dataclass(frozen=True)
class ReportingStack:
    dsn: str
    bootstrap: str
    url: str


@contextlib.asynccontextmanager
async def reporting_stack(prefix: str = "nps-bench-live-") -> AsyncIterator[ReportingStack]:
    """Postgres, the broker and the reporting service as a process of its own (production settings);
    all stopped afterwards. Shared with ``bench.report_panels``."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    postgres = EmbeddedPostgres(workdir / "pg")
    postgres.start()
    kafka = EmbeddedKafka(free_port(), workdir)
    await kafka.start()
    await ensure_topics(kafka.bootstrap, ALL_TOPICS)
    http_port = free_port()
    stack = ReportingStack(
        dsn=postgres.url.replace("postgresql+asyncpg", "postgresql"),
        bootstrap=kafka.bootstrap,
        url=f"http://127.0.0.1:{http_port}",
    )
    env = {
        **os.environ,
        "DATABASE_URL": postgres.url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "HTTP_PORT": str(http_port),
        "NPS_ADMIN_TOKEN": secrets.token_urlsafe(24),
        "NPS_ENV": "production",
        "LOG_LEVEL": "WARNING",
    }
    log = workdir / "reporting.log"
    process = start_process([sys.executable, "-m", "services.reporting"], log, env)
    try:
        await wait_ready(stack.url, process, log)
        yield stack
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(15)
        await kafka.stop()
        postgres.stop()


async def announce_tenant(stack: ReportingStack) -> BenchTenant:
    """A tenant and key on ``nps.tenants``, then the panels until they accept the key."""
    tenant_id, key, now = uuid.uuid4(), generate_api_key(), datetime.now(UTC)
    owner = "owner@live.example"
    events = [
        new_event(
            TENANT_CREATED,
            tenant_id=str(tenant_id),
            source="/bench",
            subject=str(tenant_id),
            data=TenantCreated(tenant_id=tenant_id, name="live", owner_email=owner, created_at=now),
        ),
        new_event(
            APIKEY_CREATED,
            tenant_id=str(tenant_id),
            source="/bench",
            subject=str(tenant_id),
            data=ApiKeyCreated(key_id=key.key_id, tenant_id=tenant_id, key_hash=key.key_hash, created_at=now),
        ),
    ]
    await produce(stack.bootstrap, TENANTS, [(str(tenant_id).encode(), to_json(event)) for event in events])
    tenant = BenchTenant(tenant_id, key.secret, owner)
    async with httpx.AsyncClient(base_url=stack.url, headers=tenant.headers, timeout=30) as client:
        for _ in range(600):
            if (await client.get("/v1/reports/scores")).status_code == 200:
                return tenant
            await asyncio.sleep(0.1)
    raise SystemExit("reporting did not accept the bench tenant's key")


def cell_update(tenant: BenchTenant, day: date, version: int) -> bytes:
    distribution = [0] * 10 + [version]
    data = NpsUpdated(
        touchpoint=TOUCHPOINT,
        promoters=version,
        passives=0,
        detractors=0,
        responses=version,
        nps=100.0,
        as_of=datetime.now(UTC),
        distribution=distribution,
        window=NpsWindow(bucket="day", start=day, end=date.fromordinal(day.toordinal() + 1)),
        version=version,
    )
    event = new_event(
        NPS_UPDATED, tenant_id=str(tenant.tenant_id), data=data, subject=TOUCHPOINT, source="/bench"
    )
    return to_json(event)


async def time_rounds(
    count: int, send: Callable[[int], Awaitable[None]], heard: asyncio.Queue[int]
) -> list[float]:
    """Send rounds one after another; each is timed from its send to ``heard`` yielding its number."""
    seconds = []
    for number in range(1, count + 1):
        begin = time.perf_counter()
        await send(number)
        while await asyncio.wait_for(heard.get(), 30) != number:
            pass
        if number > WARM_UP:
            seconds.append(time.perf_counter() - begin)
    return seconds


async def time_stream(stack: ReportingStack, tenant: BenchTenant) -> list[float]:
    day = datetime.now(UTC).date()
    heard: asyncio.Queue[int] = asyncio.Queue()
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, linger_ms=0)
    await producer.start()

    async def send(version: int) -> None:
        await producer.send_and_wait(SCORES, cell_update(tenant, day, version), key=TOUCHPOINT.encode())

    params = {"touchpoint": TOUCHPOINT}
    try:
        async with (
            httpx.AsyncClient(base_url=stack.url, headers=tenant.headers, timeout=60) as client,
            client.stream("GET", "/v1/nps/stream", params=params) as stream,
        ):
            reading = asyncio.create_task(_read_versions(stream, heard))
            try:
                return await time_rounds(WARM_UP + UPDATES, send, heard)
            finally:
                reading.cancel()
    finally:
        await producer.stop()


async def _read_versions(stream: httpx.Response, heard: asyncio.Queue[int]) -> None:
    async for line in stream.aiter_lines():
        if line.startswith("data: "):
            await heard.put(int(json.loads(line.removeprefix("data: "))["version"]))


async def time_kafka(stack: ReportingStack) -> list[float]:
    """The broker alone: a record published, read back by an assigned consumer (no group) that
    fetches as the services' consumers do (``KAFKA_FETCH_MAX_WAIT_MS``)."""
    topic = "bench.live-baseline"
    await ensure_topics(stack.bootstrap, {topic: 1})
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, linger_ms=0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=ServiceSettings().kafka_fetch_max_wait_ms,
    )
    await producer.start()
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0)])
    await consumer.seek_to_end()
    heard: asyncio.Queue[int] = asyncio.Queue()

    async def read() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    await heard.put(int(record.value or b"0"))

    async def send(number: int) -> None:
        await producer.send_and_wait(topic, str(number).encode())

    reading = asyncio.create_task(read())
    try:
        return await time_rounds(WARM_UP + UPDATES, send, heard)
    finally:
        reading.cancel()
        await consumer.stop()
        await producer.stop()


async def time_notify(stack: ReportingStack) -> list[float]:
    """Postgres alone: ``pg_notify`` committed on one connection, heard on another's LISTEN."""
    heard: asyncio.Queue[int] = asyncio.Queue()
    listening = await asyncpg.connect(stack.dsn)
    notifying = await asyncpg.connect(stack.dsn)
    await listening.add_listener("bench_live", lambda *args: heard.put_nowait(int(args[3])))

    async def send(number: int) -> None:
        await notifying.execute("SELECT pg_notify('bench_live', $1)", str(number))

    try:
        return await time_rounds(WARM_UP + UPDATES, send, heard)
    finally:
        await notifying.close()
        await listening.close()


def figures(seconds: list[float]) -> str:
    return ", ".join(f"p{int(q * 100)} {ms(quantile(seconds, q))}" for q in (0.5, 0.95, 0.99))


async def main() -> None:
    print(f"live score: nps.updated -> SSE event on /v1/nps/stream, {UPDATES} updates one after another")
    async with reporting_stack() as stack:
        tenant = await announce_tenant(stack)
        project = await time_stream(stack, tenant)
        broker = await time_kafka(stack)
        notify = await time_notify(stack)
    print(f"  project : nps.updated published -> nps event read from the stream: {figures(project)}")
    print(f"  baseline: broker publish -> assigned consumer: {figures(broker)}")
    print(f"  baseline: pg_notify committed -> LISTEN: {figures(notify)}")
    print(
        f"  ratio   : project / broker = {quantile(project, 0.99) / quantile(broker, 0.99):.1f} at p99 "
        "(the rest: the consumer group's poll, one transaction, the stream's fan-out, HTTP)"
    )


if __name__ == "__main__":
    asyncio.run(main())
