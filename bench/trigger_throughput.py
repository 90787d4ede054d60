"""Trigger throughput: events/s from HTTP batch ingest to ``survey.requested`` published, next to a
raw baseline measured in the same run (aiokafka consume + asyncpg COPY of the same events).

    make bench                       # 50,000 events
    BENCH_EVENTS=200000 make bench

It starts its own embedded Postgres and Tansu under a temporary directory and the trigger as a
separate process, exactly as ``make run`` does. Figures vary on shared machines: compare the
ratio, not the absolute numbers.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from libs.common.kafka import ensure_topics
from libs.common.topics import ALL_TOPICS, SURVEY_REQUESTS
from libs.devstack.kafka import EmbeddedKafka
from libs.devstack.pg import EmbeddedPostgres
from libs.devstack.ports import free_port

EVENTS = int(os.environ.get("BENCH_EVENTS", "50000"))
BATCH = 1000
CONCURRENCY = 4
REPEAT_SHARE = 0.3  # this share of events is for a customer already asked: decided, not invited


def make_events(count: int) -> list[dict[str, Any]]:
    unique_customers = int(count * (1 - REPEAT_SHARE))
    events = []
    for i in range(count):
        customer = f"cust-{i % unique_customers}"
        events.append(
            {
                "specversion": "1.0",
                "id": f"bench-{uuid.uuid4().hex}",
                "source": "/bench",
                "type": "purchase.completed.v1",
                "subject": customer,
                "data": {
                    "order_id": f"o-{i}",
                    "customer_id": customer,
                    "email": f"{customer}@bench.example",
                    "amount": "199.00",
                    "currency": "DKK",
                    "locale": "da-DK",
                },
            }
        )
    return events


async def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            if process.poll() is not None:
                raise SystemExit(f"trigger exited early; see {log}")
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("trigger did not become ready")


async def count_records(bootstrap: str, topic: str, expected: int, started: asyncio.Event) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=100)
    started.set()
    seen = 0
    try:
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            seen += sum(len(records) for records in batches.values())
        return time.perf_counter()
    finally:
        await consumer.stop()


async def project_run(
    url: str, api_key: str, bootstrap: str, events: list[dict[str, Any]]
) -> tuple[float, int]:
    expected = int(len(events) * (1 - REPEAT_SHARE))
    started = asyncio.Event()
    counter = asyncio.create_task(count_records(bootstrap, SURVEY_REQUESTS, expected, started))
    await started.wait()
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)
    invited = 0

    async def post_all(client: httpx.AsyncClient) -> None:
        nonlocal invited
        while not queue.empty():
            batch = queue.get_nowait()
            response = await client.post(
                f"{url}/v1/events",
                content=json.dumps(batch),
                headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            )
            response.raise_for_status()
            invited += sum(1 for r in response.json()["results"] if r.get("decision") == "invited")

    begin = time.perf_counter()
    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(*(post_all(client) for _ in range(CONCURRENCY)))
    http_done = time.perf_counter()
    end = await counter
    print(
        f"  (HTTP ingest {http_done - begin:.2f} s; last survey.requested {end - http_done:.2f} s after it)"
    )
    return end - begin, invited


async def baseline_run(bootstrap: str, pg_dsn: str, events: list[dict[str, Any]]) -> float:
    """The floor: read the same events from Kafka and COPY them into Postgres, nothing else."""
    topic = f"bench.baseline.{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, {topic: 6})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for event in events:
            await producer.send(topic, json.dumps(event).encode(), key=event["subject"].encode())
        await producer.flush()
    finally:
        await producer.stop()
    connection = await asyncpg.connect(pg_dsn)
    await connection.execute(
        "CREATE TABLE IF NOT EXISTS bench_baseline "
        "(tenant_id uuid, event_id text, customer_id text, payload jsonb)"
    )
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    tenant = uuid.uuid4()
    seen = 0
    begin = time.perf_counter()
    try:
        while seen < len(events):
            batches = await consumer.getmany(timeout_ms=500, max_records=BATCH)
            rows = []
            for records in batches.values():
                for record in records:
                    body = json.loads(record.value)
                    rows.append((tenant, body["id"], body["data"]["customer_id"], record.value.decode()))
            if rows:
                await connection.copy_records_to_table("bench_baseline", records=rows)
                await consumer.commit()
                seen += len(rows)
        return time.perf_counter() - begin
    finally:
        await consumer.stop()
        await connection.close()


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="nps-bench-"))
    postgres = EmbeddedPostgres(workdir / "pg")
    postgres.start()
    kafka = EmbeddedKafka(free_port(), workdir)
    await kafka.start()
    await ensure_topics(kafka.bootstrap, ALL_TOPICS)
    port = free_port()
    admin_token = secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "DATABASE_URL": postgres.url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "HTTP_PORT": str(port),
        "NPS_ADMIN_TOKEN": admin_token,
        "NPS_ENV": "production",
        "LOG_LEVEL": "WARNING",
    }
    log = workdir / "trigger.log"
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
        [sys.executable, "-m", "services.trigger"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, process, log)
        async with httpx.AsyncClient() as client:
            headers = {"X-Admin-Token": admin_token}
            await client.post(f"{url}/v1/admin/tenants", json={"name": "bench"}, headers=headers)
            key = (await client.post(f"{url}/v1/admin/tenants/bench/api-keys", headers=headers)).json()[
                "api_key"
            ]
        events = make_events(EVENTS)
        print(
            f"trigger throughput: {EVENTS} purchase events,"
            f" {int(REPEAT_SHARE * 100)} % inside the rest period,"
            f" HTTP batches of {BATCH}, {CONCURRENCY} concurrent clients"
        )
        project_seconds, invited = await project_run(url, key, kafka.bootstrap, events)
        pg_dsn = postgres.url.replace("postgresql+asyncpg", "postgresql")
        baseline_seconds = await baseline_run(kafka.bootstrap, pg_dsn, events)
        project_rate = EVENTS / project_seconds
        baseline_rate = EVENTS / baseline_seconds
        print(
            f"  project : HTTP ingest -> decision -> outbox -> survey.requested consumed: "
            f"{project_rate:,.0f} events/s ({project_seconds:.2f} s, {invited} invited)"
        )
        print(
            f"  baseline: aiokafka consume + asyncpg COPY of the same events:            "
            f"{baseline_rate:,.0f} events/s ({baseline_seconds:.2f} s)"
        )
        print(f"  ratio   : project / baseline = {project_rate / baseline_rate:.2f}")
    finally:
        process.terminate()
        process.wait(15)
        await kafka.stop()
        postgres.stop()


if __name__ == "__main__":
    asyncio.run(main())
