"""How many duplicate emails a kill -9 of the survey service causes.

    make bench
    BENCH_KILL_EMAILS=3000 BENCH_KILLS=3 .venv/bin/python -m bench.survey_kill

The survey service sends from a durable state machine (scheduled -> sending -> sent) and records
each delivery as soon as the SMTP server accepted it. A kill -9 between the server taking the
message and that record makes the invitation look unsent; it is claimed again after
SENDING_TIMEOUT_SECONDS and mailed a second time. SMTP has no way to ask "did you get it?", so
the messages in flight at the kill (at most SEND_CONCURRENCY) are the bound. This measures it: N
invitations, the service killed with SIGKILL while it is sending, restarted, BENCH_KILLS times,
until every invitation is sent; then the messages the sink holds are counted by Message-ID.
Nothing may be lost: every invitation must arrive at least once.
"""

from __future__ import annotations

import asyncio
import collections
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer

from bench.survey_stack import announce_tenant
from bench.trigger_throughput import wait_ready
from libs.common import topics
from libs.common.events import SURVEY_REQUESTED, SurveyRequested, new_event
from libs.common.kafka import ensure_topics
from libs.devstack.kafka import EmbeddedKafka
from libs.devstack.pg import EmbeddedPostgres
from libs.devstack.ports import free_port
from libs.devstack.smtp_sink import SmtpSink, read_messages

EMAILS = int(os.environ.get("BENCH_KILL_EMAILS", "3000"))
KILLS = int(os.environ.get("BENCH_KILLS", "3"))
BATCH = 50
CONCURRENCY = 25


async def produce(bootstrap: str, tenant_id: uuid.UUID) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        now = datetime.now(UTC)
        for n in range(EMAILS):
            customer = f"kill-{n}"
            event = new_event(
                SURVEY_REQUESTED,
                tenant_id=str(tenant_id),
                data=SurveyRequested(
                    invitation_id=uuid.uuid4(),
                    customer_id=customer,
                    email=f"{customer}@bench.example",
                    touchpoint="webshop-purchase",
                    trigger_event_id=f"order-{n}",
                    trigger_event_type="purchase.completed.v1",
                    send_at=now,
                ),
                subject=customer,
                source="/bench",
            )
            await producer.send(topics.SURVEY_REQUESTS, event.envelope.to_json(), key=customer.encode())
        await producer.flush()
    finally:
        await producer.stop()


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.survey"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


async def sent_count(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(
            await connection.fetchval("SELECT count(*) FROM survey.invitations WHERE sent_at IS NOT NULL")
        )
    finally:
        await connection.close()


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="nps-bench-kill-"))
    postgres = EmbeddedPostgres(workdir / "pg")
    postgres.start()
    kafka = EmbeddedKafka(free_port(), workdir)
    await kafka.start()
    await ensure_topics(kafka.bootstrap, topics.ALL_TOPICS)
    sink = SmtpSink(workdir / "mail")
    sink.start()
    dsn = postgres.url.replace("postgresql+asyncpg", "postgresql")
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": postgres.url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "SMTP_URL": sink.url,
        "NPS_ENV": "production",
        "NPS_ADMIN_TOKEN": secrets.token_urlsafe(24),
        "SURVEY_TOKEN_SECRET": secrets.token_urlsafe(32),
        "LOG_LEVEL": "WARNING",
        "HTTP_PORT": str(port),
        "SEND_BATCH_SIZE": str(BATCH),
        "SEND_CONCURRENCY": str(CONCURRENCY),
        "SEND_POLL_SECONDS": "0.05",
        "SMTP_TIMEOUT_SECONDS": "2",
        # Reclaim a dead sender's batch quickly, so the run is short.
        "SENDING_TIMEOUT_SECONDS": "5",
    }
    log = workdir / "survey.log"
    process = start(env, log)
    try:
        await wait_ready(f"http://127.0.0.1:{port}", process, log)
        print(
            f"survey kill -9: {EMAILS:,} invitations, {KILLS} x SIGKILL while sending, "
            f"SEND_BATCH_SIZE={BATCH}, SEND_CONCURRENCY={CONCURRENCY}"
        )
        # A tenant the survey has not heard of has its requests held (up to UNKNOWN_TENANT_HOLD_SECONDS)
        # until its tenant.created arrives: announce it first, as the trigger would. Its sending rate
        # (600 a minute by default) would be all this measured, so it is raised.
        base_url = f"http://127.0.0.1:{port}"
        tenant_id, _ = await announce_tenant(
            kafka.bootstrap,
            "bench-kill",
            lambda client, headers: client.put(
                f"{base_url}/v1/survey-settings", json={"send_rate_per_minute": 100000}, headers=headers
            ),
        )
        await produce(kafka.bootstrap, tenant_id)
        for kill in range(KILLS):
            target = EMAILS * (kill + 1) // (KILLS + 1)
            while len(list((workdir / "mail").glob("*.eml"))) < target:  # noqa: ASYNC110 - polling a directory
                await asyncio.sleep(0.01)
            process.send_signal(signal.SIGKILL)
            process.wait()
            process = start(env, log)
            await wait_ready(f"http://127.0.0.1:{port}", process, log)
        started = time.perf_counter()
        while await sent_count(dsn) < EMAILS:
            if time.perf_counter() - started > 300:
                raise SystemExit("not every invitation was sent within 5 minutes")
            await asyncio.sleep(0.5)
        await asyncio.sleep(1)
        ids = collections.Counter(str(message["Message-ID"]) for message in read_messages(workdir / "mail"))
        duplicates = sum(count - 1 for count in ids.values())
        print(f"  invitations       : {EMAILS:,}, every one sent: {len(ids) == EMAILS}")
        print(f"  emails received   : {sum(ids.values()):,} ({len(ids):,} distinct Message-IDs)")
        print(
            f"  duplicates        : {duplicates} over {KILLS} kills = {duplicates / KILLS:.1f} per kill "
            f"(bound: the messages in flight, SEND_CONCURRENCY={CONCURRENCY}, per kill)"
        )
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(15)
        sink.stop()
        await kafka.stop()
        postgres.stop()


if __name__ == "__main__":
    asyncio.run(main())
