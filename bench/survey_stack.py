"""The survey service under a bench: Postgres, Tansu, the SMTP sink and the survey, each a real
server (``survey_stack``), a tenant announced to it as the trigger would (``announce_tenant``), the
``survey.requested.v1`` events to put on its topic, and the sink's count of finished emails.

Shared by ``bench.survey_delivery`` and ``bench.survey_burst``, so both measure the same set-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from bench.trigger_throughput import wait_ready
from libs.common.events import (
    APIKEY_CREATED,
    SURVEY_REQUESTED,
    TENANT_CREATED,
    ApiKeyCreated,
    Contract,
    Event,
    SurveyRequested,
    TenantCreated,
    new_event,
)
from libs.common.kafka import ensure_topics
from libs.common.tenancy import generate_api_key
from libs.common.topics import ALL_TOPICS, TENANTS
from libs.devstack.kafka import EmbeddedKafka
from libs.devstack.pg import EmbeddedPostgres
from libs.devstack.ports import free_port, wait_for_port

MAIL_FROM = "NPS Survey <survey@bench.example>"
TOUCHPOINT = "webshop-purchase"

#: One call of the survey's API with a tenant's key (its Authorization header), e.g. a GET or PUT
#: of ``/v1/survey-settings``.
KeyCall = Callable[[httpx.AsyncClient, dict[str, str]], Awaitable[httpx.Response]]


def mail_count(mail_dir: Path) -> int:
    # The sink writes ".<name>.tmp" first and renames: only finished messages end in ".eml" unhidden.
    return sum(1 for entry in os.scandir(mail_dir) if entry.name.endswith(".eml") and entry.name[0] != ".")


async def wait_for_mail(mail_dir: Path, expected: int, within: float = 600.0) -> float:
    deadline = time.perf_counter() + within
    while (count := mail_count(mail_dir)) < expected:
        if time.perf_counter() > deadline:
            raise SystemExit(f"the sink received {count} of {expected} emails within {within:.0f} s")
        await asyncio.sleep(0.02)
    return time.perf_counter()


def to_json(event: Event[Contract]) -> bytes:
    return event.envelope.to_json()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=512 * 1024)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def announce_tenant(bootstrap: str, name: str, call: KeyCall) -> tuple[uuid.UUID, httpx.Response]:
    """Announce a tenant and key on ``nps.tenants`` as the trigger does, then repeat ``call`` with the
    key until the survey answers 200: it has consumed the key, which also means its consumer has
    joined the group before anything is measured. Returns the tenant and that answer."""
    tenant_id = uuid.uuid4()
    key = generate_api_key()
    now = datetime.now(UTC)
    announcements = [
        new_event(
            TENANT_CREATED,
            tenant_id=str(tenant_id),
            source="/bench",
            subject=str(tenant_id),
            data=TenantCreated(tenant_id=tenant_id, name=name, created_at=now),
        ),
        new_event(
            APIKEY_CREATED,
            tenant_id=str(tenant_id),
            source="/bench",
            subject=str(tenant_id),
            data=ApiKeyCreated(key_id=key.key_id, tenant_id=tenant_id, key_hash=key.key_hash, created_at=now),
        ),
    ]
    await produce(bootstrap, TENANTS, [(str(tenant_id).encode(), to_json(event)) for event in announcements])
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(600):
            response = await call(client, {"Authorization": f"Bearer {key.secret}"})
            if response.status_code == 200:
                return tenant_id, response
            await asyncio.sleep(0.1)
    raise SystemExit(f"the survey service did not accept the bench tenant's key ({response.status_code})")


def survey_requests(tenant_id: uuid.UUID, count: int) -> tuple[list[uuid.UUID], list[tuple[bytes, bytes]]]:
    now = datetime.now(UTC)
    invitation_ids = [uuid.uuid4() for _ in range(count)]
    records = []
    for index, invitation_id in enumerate(invitation_ids):
        customer = f"cust-{index}"
        event = new_event(
            SURVEY_REQUESTED,
            tenant_id=str(tenant_id),
            data=SurveyRequested(
                invitation_id=invitation_id,
                customer_id=customer,
                email=f"{customer}@bench.example",
                name=f"Customer {index}",
                locale="en-GB",
                touchpoint=TOUCHPOINT,
                trigger_event_id=f"order-{index}",
                trigger_event_type="purchase.completed.v1",
                send_at=now,
            ),
            subject=customer,
            source="/nps/trigger",
            event_id=str(invitation_id),
        )
        records.append((customer.encode(), to_json(event)))
    return invitation_ids, records


@dataclass(frozen=True)
class SurveyStack:
    """Postgres, Tansu, the SMTP sink and the survey service, each a real server; what a bench
    needs to reach them."""

    dsn: str
    bootstrap: str
    mail_dir: Path
    url: str
    smtp_port: int
    secret: str
    workdir: Path


@contextlib.asynccontextmanager
async def survey_stack(prefix: str, service_env: dict[str, str]) -> AsyncIterator[SurveyStack]:
    """Start everything, the survey with ``service_env`` on top of production settings; stop it all
    afterwards. The sink is a process of its own, so that it never shares a GIL with the bench."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    postgres = EmbeddedPostgres(workdir / "pg")
    postgres.start()
    kafka = EmbeddedKafka(free_port(), workdir)
    await kafka.start()
    await ensure_topics(kafka.bootstrap, ALL_TOPICS)
    mail_dir = workdir / "mail"
    mail_dir.mkdir()
    smtp_port, http_port = free_port(), free_port()
    stack = SurveyStack(
        dsn=postgres.url.replace("postgresql+asyncpg", "postgresql"),
        bootstrap=kafka.bootstrap,
        mail_dir=mail_dir,
        url=f"http://127.0.0.1:{http_port}",
        smtp_port=smtp_port,
        secret=secrets.token_urlsafe(32),
        workdir=workdir,
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        sink_command = [sys.executable, "-m", "libs.devstack.smtp_sink", "--dir", str(mail_dir)]
        processes.append(
            subprocess.Popen(  # noqa: ASYNC220 - set-up, before anything is measured
                [*sink_command, "--port", str(smtp_port)],
                stdout=(workdir / "smtp.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        sink = processes[-1]
        await wait_for_port(smtp_port, within=30, alive=lambda: sink.poll() is None)
        env = {
            **os.environ,
            "DATABASE_URL": postgres.url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
            "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
            "HTTP_PORT": str(http_port),
            "SURVEY_PUBLIC_URL": stack.url,
            "SURVEY_TOKEN_SECRET": stack.secret,
            "NPS_ADMIN_TOKEN": secrets.token_urlsafe(24),
            "NPS_ENV": "production",
            "LOG_LEVEL": "WARNING",
            "MAIL_FROM": MAIL_FROM,
            **service_env,
        }
        log = workdir / "survey.log"
        processes.append(
            subprocess.Popen(  # noqa: ASYNC220 - the process under test, started before measuring
                [sys.executable, "-m", "services.survey"],
                env=env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        await wait_ready(stack.url, processes[-1], log)
        yield stack
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
            process.wait(15)
        await kafka.stop()
        postgres.stop()
