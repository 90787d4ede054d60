"""The alerting service under a bench: Postgres, Tansu, the SMTP sink and the alerting service, each
a real server (``alerting_stack``), and a tenant with an owner and an API key announced to it on
``nps.tenants`` as the trigger would (``announce_tenant``).

Shared by ``bench.alerting_cases`` and ``bench.desk_list``, so both measure the same set-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.survey_stack import produce, to_json
from bench.trigger_throughput import wait_ready
from libs.common.events import APIKEY_CREATED, TENANT_CREATED, ApiKeyCreated, TenantCreated, new_event
from libs.common.kafka import ensure_topics
from libs.common.tenancy import generate_api_key
from libs.common.topics import ALL_TOPICS, TENANTS
from libs.devstack.kafka import EmbeddedKafka
from libs.devstack.pg import EmbeddedPostgres
from libs.devstack.ports import free_port, wait_for_port


@dataclass(frozen=True)
class AlertingStack:
    """What a bench needs to reach the servers: ``dsn`` for asyncpg, ``database_url`` for SQLAlchemy."""

    dsn: str
    database_url: str
    bootstrap: str
    url: str
    workdir: Path


@dataclass(frozen=True)
class BenchTenant:
    tenant_id: uuid.UUID
    api_key: str
    owner_email: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def start_process(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


@contextlib.asynccontextmanager
async def alerting_stack(prefix: str, service_env: dict[str, str]) -> AsyncIterator[AlertingStack]:
    """Start everything, the alerting service with ``service_env`` on top of production settings;
    stop it all afterwards. The service and the sink are processes of their own, so that neither
    shares a GIL with the bench."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    postgres = EmbeddedPostgres(workdir / "pg")
    postgres.start()
    kafka = EmbeddedKafka(free_port(), workdir)
    await kafka.start()
    await ensure_topics(kafka.bootstrap, ALL_TOPICS)
    mail_dir = workdir / "mail"
    mail_dir.mkdir()
    smtp_port, http_port = free_port(), free_port()
    stack = AlertingStack(
        dsn=postgres.url.replace("postgresql+asyncpg", "postgresql"),
        database_url=postgres.url,
        bootstrap=kafka.bootstrap,
        url=f"http://127.0.0.1:{http_port}",
        workdir=workdir,
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        sink_command = [sys.executable, "-m", "libs.devstack.smtp_sink", "--dir", str(mail_dir)]
        processes.append(start_process([*sink_command, "--port", str(smtp_port)], workdir / "smtp.log"))
        sink = processes[-1]
        await wait_for_port(smtp_port, within=30, alive=lambda: sink.poll() is None)
        env = {
            **os.environ,
            "DATABASE_URL": postgres.url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
            "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
            "HTTP_PORT": str(http_port),
            "DESK_PUBLIC_URL": stack.url,
            "NPS_ADMIN_TOKEN": secrets.token_urlsafe(24),
            "NPS_ENV": "production",
            "LOG_LEVEL": "WARNING",
            **service_env,
        }
        log = workdir / "alerting.log"
        processes.append(start_process([sys.executable, "-m", "services.alerting"], log, env))
        await wait_ready(stack.url, processes[-1], log)
        yield stack
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
            process.wait(15)
        await kafka.stop()
        postgres.stop()


async def announce_tenant(stack: AlertingStack, name: str) -> BenchTenant:
    """Announce a tenant (with an owner email, who takes the cases no rule places) and its key on
    ``nps.tenants``, then call ``GET /v1/cases`` with the key until it answers 200: the service has
    consumed them, so its consumer has joined its group before anything is measured."""
    tenant_id = uuid.uuid4()
    key = generate_api_key()
    owner_email = f"owner@{name}.example"
    now = datetime.now(UTC)
    announcements = [
        new_event(
            TENANT_CREATED,
            tenant_id=str(tenant_id),
            source="/bench",
            subject=str(tenant_id),
            data=TenantCreated(tenant_id=tenant_id, name=name, owner_email=owner_email, created_at=now),
        ),
        new_event(
            APIKEY_CREATED,
            tenant_id=str(tenant_id),
            source="/bench",
            subject=str(tenant_id),
            data=ApiKeyCreated(key_id=key.key_id, tenant_id=tenant_id, key_hash=key.key_hash, created_at=now),
        ),
    ]
    await produce(
        stack.bootstrap, TENANTS, [(str(tenant_id).encode(), to_json(event)) for event in announcements]
    )
    tenant = BenchTenant(tenant_id, key.secret, owner_email)
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(600):
            response = await client.get(f"{stack.url}/v1/cases", params={"limit": 1}, headers=tenant.headers)
            if response.status_code == 200:
                return tenant
            await asyncio.sleep(0.1)
    raise SystemExit(f"the alerting service did not accept the bench tenant's key ({response.status_code})")
