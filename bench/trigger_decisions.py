"""Trigger decisions/s through the full rule set, with 1,000,000 known customers in the database.

    make bench                                  # runs every benchmark
    BENCH_CUSTOMERS=1000000 BENCH_DECISIONS=200000 BENCH_PROCESSES=2 \\
        .venv/bin/python -m bench.trigger_decisions

The mix: every event is a paid purchase by a known customer; 30 % of them are inside the rest period
(asked 10 days ago), the touchpoint samples 90 % (so about 10 % of the rest are sampled out), and
the touchpoint has a send window, a delay and a status filter, so every rule runs. Events go onto
the Kafka intake topic; trigger processes (a consumer group) decide them. The clock runs from the
first decision until the last one is recorded.

Baseline, same run, same events: aiokafka consume + asyncpg COPY into a table, nothing else.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from bench.trigger_throughput import baseline_run, wait_ready
from libs.common.kafka import ensure_topics
from libs.common.topics import ALL_TOPICS, PURCHASES
from libs.devstack.kafka import EmbeddedKafka
from libs.devstack.pg import EmbeddedPostgres
from libs.devstack.ports import free_port

CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "1000000"))
DECISIONS = int(os.environ.get("BENCH_DECISIONS", "100000"))
PROCESSES = int(os.environ.get("BENCH_PROCESSES", "2"))
RESTING_SHARE = 0.3

TOUCHPOINT = {
    "event_types": ["purchase.completed.v1"],
    "filters": [{"field": "status", "op": "in", "value": ["paid", "fulfilled"]}],
    "delay_minutes": 60,
    "send_window": {
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "start": "00:00",
        "end": "23:59",
        "time_zone": "Europe/Copenhagen",
    },
    "sample": {"percent": 90},
}


async def load_customers(dsn: str, tenant_id: uuid.UUID) -> None:
    now = datetime.now(UTC)
    connection = await asyncpg.connect(dsn)
    try:
        batch = []
        for index in range(CUSTOMERS):
            resting = index % 10 < RESTING_SHARE * 10
            last = now - timedelta(days=10 if resting else 400)
            batch.append((tenant_id, f"cust-{index}", last, last, f"cust-{index}@bench.example"))
            if len(batch) == 50_000:
                await connection.copy_records_to_table(
                    "customers",
                    schema_name="trigger",
                    records=batch,
                    columns=["tenant_id", "customer_id", "last_invited_at", "last_event_at", "email"],
                )
                batch = []
        if batch:
            await connection.copy_records_to_table(
                "customers",
                schema_name="trigger",
                records=batch,
                columns=["tenant_id", "customer_id", "last_invited_at", "last_event_at", "email"],
            )
        await connection.execute("ANALYZE trigger.customers")
    finally:
        await connection.close()


def make_events(tenant_id: uuid.UUID) -> list[dict[str, object]]:
    chosen = random.Random(7).sample(range(CUSTOMERS), DECISIONS)
    return [
        {
            "specversion": "1.0",
            "id": f"bench-{uuid.uuid4().hex}",
            "source": "/bench",
            "type": "purchase.completed.v1",
            "tenantid": str(tenant_id),
            "subject": f"cust-{index}",
            "data": {
                "order_id": f"o-{n}",
                "customer_id": f"cust-{index}",
                "email": f"cust-{index}@bench.example",
                "status": "paid",
                "amount": "199.00",
                "currency": "DKK",
                "time_zone": "Europe/Copenhagen",
            },
        }
        for n, index in enumerate(chosen)
    ]


async def produce(bootstrap: str, events: list[dict[str, object]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        for event in events:
            await producer.send(PURCHASES, json.dumps(event).encode(), key=str(event["subject"]).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def wait_for_decisions(
    dsn: str, tenant_id: uuid.UUID, expected: int, after: int = 0
) -> tuple[float, float]:
    """Poll until ``expected`` decisions exist; return when the first beyond ``after`` was seen and
    when the last one was."""
    connection = await asyncpg.connect(dsn)
    try:
        first = None
        while True:
            count = await connection.fetchval(
                "SELECT count(*) FROM trigger.decisions WHERE tenant_id = $1", tenant_id
            )
            if count > after and first is None:
                first = time.perf_counter()
            if count >= expected:
                assert first is not None
                return first, time.perf_counter()
            await asyncio.sleep(0.05)
    finally:
        await connection.close()


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="nps-bench-decisions-"))
    postgres = EmbeddedPostgres(workdir / "pg")
    postgres.start()
    kafka = EmbeddedKafka(free_port(), workdir)
    await kafka.start()
    await ensure_topics(kafka.bootstrap, ALL_TOPICS)
    dsn = postgres.url.replace("postgresql+asyncpg", "postgresql")
    admin_token = secrets.token_urlsafe(24)
    base_env = {
        **os.environ,
        "DATABASE_URL": postgres.url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "NPS_ADMIN_TOKEN": admin_token,
        "NPS_ENV": "production",
        "LOG_LEVEL": "WARNING",
        "CONSUMER_BATCH_SIZE": "1000",
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        port = free_port()
        log = workdir / "trigger-0.log"
        processes.append(
            subprocess.Popen(  # noqa: ASYNC220 - set-up, before anything is measured
                [sys.executable, "-m", "services.trigger"],
                env={**base_env, "HTTP_PORT": str(port)},
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url, processes[0], log)
        async with httpx.AsyncClient(timeout=60) as client:
            headers = {"X-Admin-Token": admin_token}
            tenant_id = uuid.UUID(
                (
                    await client.post(f"{url}/v1/admin/tenants", json={"name": "bench"}, headers=headers)
                ).json()["tenant_id"]
            )
            key = (await client.post(f"{url}/v1/admin/tenants/bench/api-keys", headers=headers)).json()[
                "api_key"
            ]
            await client.put(
                f"{url}/v1/touchpoints/webshop-purchase",
                json=TOUCHPOINT,
                headers={"Authorization": f"Bearer {key}"},
            )
        processes[0].terminate()
        processes[0].wait(15)
        processes.clear()
        print(
            f"trigger decisions: {DECISIONS:,} purchases by customers among {CUSTOMERS:,} known, "
            f"{int(RESTING_SHARE * 100)} % inside the rest period, 90 % sample, filter + delay + window; "
            f"{PROCESSES} trigger process(es)"
        )
        started = time.perf_counter()
        await load_customers(dsn, tenant_id)
        print(f"  (loaded {CUSTOMERS:,} customers in {time.perf_counter() - started:.1f} s)")
        events = make_events(tenant_id)
        for number in range(PROCESSES):
            log = workdir / f"trigger-{number}.log"
            port = free_port()
            processes.append(
                subprocess.Popen(  # noqa: ASYNC220 - the processes under test
                    [sys.executable, "-m", "services.trigger"],
                    env={**base_env, "HTTP_PORT": str(port)},
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )
            await wait_ready(f"http://127.0.0.1:{port}", processes[-1], log)
        # Measure the steady state: every process has joined the consumer group and the group has
        # settled before the first measured event arrives (a rebalance stalls partitions).
        warm_up = [
            {
                **event,
                "id": f"warm-{n}",
                "subject": f"warm-{n}",
                "data": {"order_id": f"warm-{n}", "customer_id": f"warm-{n}", "status": "paid"},
            }
            for n, event in enumerate(events[:60])
        ]
        await produce(kafka.bootstrap, warm_up)
        await wait_for_decisions(dsn, tenant_id, len(warm_up))
        await asyncio.sleep(12)
        producing = asyncio.create_task(produce(kafka.bootstrap, events))
        first, last = await wait_for_decisions(dsn, tenant_id, DECISIONS + len(warm_up), after=len(warm_up))
        await producing
        project_seconds = last - first
        connection = await asyncpg.connect(dsn)
        mix = await connection.fetch(
            "SELECT outcome, coalesce(reason, '') AS reason, count(*) FROM trigger.decisions "
            "WHERE tenant_id = $1 GROUP BY 1, 2 ORDER BY 3 DESC",
            tenant_id,
        )
        await connection.close()
        for process in processes:
            process.terminate()
        baseline_seconds = await baseline_run(kafka.bootstrap, dsn, events)
        project_rate, baseline_rate = DECISIONS / project_seconds, DECISIONS / baseline_seconds
        print(
            "  mix     : "
            + ", ".join(
                f"{row['outcome']}{'/' + row['reason'] if row['reason'] else ''} {row['count']:,}"
                for row in mix
            )
        )
        print(
            f"  project : Kafka intake -> full rule set -> decision + outbox recorded: {project_rate:,.0f} "
            f"decisions/s ({project_seconds:.2f} s)"
        )
        print(
            f"  baseline: aiokafka consume + asyncpg COPY of the same events:          {baseline_rate:,.0f} "
            f"events/s ({baseline_seconds:.2f} s)"
        )
        print(f"  ratio   : project / baseline = {project_rate / baseline_rate:.2f}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
            process.wait(15)
        await kafka.stop()
        postgres.stop()


if __name__ == "__main__":
    asyncio.run(main())
