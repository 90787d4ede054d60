"""Outbound webhooks: deliveries per second to a local receiver through the platform, next to a raw
httpx baseline posting the same payloads to the same receiver in the same run.

    make bench                                     # 2,000 deliveries
    BENCH_WEBHOOKS=10000 .venv/bin/python -m bench.webhooks_deliveries

Platform: ``survey.responded.v1`` answers (one customer each, so the order per customer holds
nothing back) go onto ``nps.survey-events``; the alerting service (a real process) queues a
``response.recorded`` delivery for the tenant's endpoint in the consuming transaction, and its
webhook sender claims, signs (Standard Webhooks), posts and records them, ``WEBHOOK_BATCH_SIZE``
(50) at a time. The clock runs from the first produce until every delivery is recorded as delivered.

Baseline: httpx posting the very payloads the platform sent (read back from its deliveries table),
signed the same way, 50 at a time, each on a connection of its own as the platform's are (it
never reuses a connection across names: ``libs/common/outbound.py``), to the same receiver.

The receiver is a process of its own (a raw asyncio HTTP/1.1 server answering 200), so it shares
a GIL with neither side. Figures vary on shared machines: compare the ratio, not the numbers.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from standardwebhooks.webhooks import Webhook

from bench.alerting_stack import alerting_stack, announce_tenant, start_process
from bench.survey_stack import produce, to_json
from libs.common.events import SURVEY_RESPONDED, SurveyResponded, new_event
from libs.common.topics import SURVEY_EVENTS
from libs.devstack.ports import free_port, wait_for_port

DELIVERIES = int(os.environ.get("BENCH_WEBHOOKS", "2000"))
CONCURRENCY = 50


async def _receiver(port: int) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


async def _delivered(dsn: str, tenant_id: uuid.UUID) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM alerting.webhook_deliveries WHERE tenant_id = $1 AND state = 'delivered'",
            tenant_id,
        )
        return int(count)
    finally:
        await connection.close()


async def _until_delivered(dsn: str, tenant_id: uuid.UUID) -> None:
    deadline = time.monotonic() + 600
    while True:
        if await _delivered(dsn, tenant_id) >= DELIVERIES:
            return
        if time.monotonic() > deadline:
            raise SystemExit("the platform did not deliver everything within 10 minutes")
        await asyncio.sleep(0.05)


async def _payloads(dsn: str, tenant_id: uuid.UUID) -> list[str]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT payload::text AS body FROM alerting.webhook_deliveries WHERE tenant_id = $1", tenant_id
        )
        return [json.dumps(json.loads(row["body"]), separators=(",", ":")) for row in rows]
    finally:
        await connection.close()


async def _baseline(url: str, secret: str, bodies: list[str]) -> float:
    signer = Webhook(secret)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def post(client: httpx.AsyncClient, body: str) -> None:
        async with gate:
            now = datetime.now(UTC)
            message_id = f"msg_{uuid.uuid4().hex}"
            headers = {
                "webhook-id": message_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signer.sign(message_id, now, body),
                "Content-Type": "application/json",
                "Connection": "close",
            }
            response = await client.post(url, content=body.encode(), headers=headers, timeout=10)
            response.raise_for_status()

    async with httpx.AsyncClient() as client:
        started = time.perf_counter()
        await asyncio.gather(*(post(client, body) for body in bodies))
        return time.perf_counter() - started


async def main() -> None:
    print(f"webhooks: {DELIVERIES} deliveries to a local receiver, {CONCURRENCY} at a time")
    port = free_port()
    stack_env = {
        "NPS_ENV": "development",
        "OUTBOUND_ALLOW_PRIVATE": "true",
        "WEBHOOK_BATCH_SIZE": str(CONCURRENCY),
    }
    async with alerting_stack("nps-bench-webhooks-", stack_env) as stack:
        receiver = start_process(
            [sys.executable, "-m", "bench.webhooks_deliveries", "receiver", str(port)],
            stack.workdir / "receiver.log",
        )
        try:
            await wait_for_port(port, within=30, alive=lambda: receiver.poll() is None)
            tenant = await announce_tenant(stack, f"bench-{uuid.uuid4().hex[:6]}")
            url = f"http://127.0.0.1:{port}/hooks"
            async with httpx.AsyncClient(timeout=30) as client:
                created = await client.post(
                    f"{stack.url}/v1/webhook-endpoints",
                    json={"url": url, "event_types": ["response.recorded"]},
                    headers=tenant.headers,
                )
                created.raise_for_status()
                secret = created.json()["secret"]
            answered = datetime.now(UTC) - timedelta(minutes=1)
            messages = []
            for n in range(DELIVERIES):
                customer = f"bench-{n}"
                data = SurveyResponded(
                    response_id=uuid.uuid4(),
                    invitation_id=uuid.uuid4(),
                    customer_id=customer,
                    email=f"{customer}@customers.example",
                    touchpoint="checkout",
                    score=10,
                    responded_at=answered,
                )
                event = new_event(
                    SURVEY_RESPONDED,
                    tenant_id=str(tenant.tenant_id),
                    data=data,
                    subject=customer,
                    source="/bench",
                )
                messages.append((customer.encode(), to_json(event)))
            started = time.perf_counter()
            await produce(stack.bootstrap, SURVEY_EVENTS, messages)
            await _until_delivered(stack.dsn, tenant.tenant_id)
            platform = time.perf_counter() - started
            bodies = await _payloads(stack.dsn, tenant.tenant_id)
            baseline = await _baseline(url, secret, bodies)
        finally:
            receiver.terminate()
            receiver.wait(10)
    platform_rate, baseline_rate = DELIVERIES / platform, len(bodies) / baseline
    print(
        f"  project : {platform_rate:8.0f} deliveries/s  (produced -> delivered, recorded: {platform:.1f} s)"
    )
    print(f"  baseline: {baseline_rate:8.0f} deliveries/s  (raw httpx, same signed bodies: {baseline:.1f} s)")
    print(f"  ratio   : project / baseline = {platform_rate / baseline_rate:.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["receiver"]:
        asyncio.run(_receiver(int(sys.argv[2])))
    else:
        asyncio.run(main())
