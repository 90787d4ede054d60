"""The notifier claims its emails in one short transaction, sends them with none open, and records
how they went in another: a slow mail server holds no row lock, and a notifier that dies after its
claim leaves the email to be sent again."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from libs.common.events import SURVEY_RESPONDED, Event, SurveyResponded, new_event
from libs.common.mail import SmtpTarget, send_email
from libs.common.service import Runtime
from libs.devstack.ports import free_port
from services.alerting import handlers
from services.alerting.config import AlertingSettings
from services.alerting.main import build
from tests.conftest import TestTenant, eventually, provision_tenant

pytestmark = pytest.mark.integration

MAIL_FROM = "NPS Alerts <alerts@nps.example>"


class SlowMailServer:
    """Takes each message only when the test lets it go; tells when one is waiting."""

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self.release = threading.Event()
        self.accepted: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.waiting.set()
        released = await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        if not released:
            return "451 4.3.0 the test never let it go"
        self.accepted.append(envelope.content)
        return "250 OK"


@pytest.fixture
def slow_mail_server() -> Iterator[tuple[SlowMailServer, str]]:
    server = SlowMailServer()
    port = free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port, server_hostname="slow")
    controller.start()
    try:
        yield server, f"smtp://127.0.0.1:{port}"
    finally:
        server.release.set()
        controller.stop()


@pytest.fixture
async def alerting_alone(pg_url: str) -> AsyncIterator[Runtime]:
    """An alerting service on a database of its own and with no loops running: the session's
    notifiers would otherwise race the test for its notifications."""
    database = f"alerting_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{database}"'))
    settings = AlertingSettings.model_validate(
        {
            "database_url": make_url(pg_url).set(database=database).render_as_string(hide_password=False),
            "nps_env": "test",
            "admin_token": "test-admin-token-" + uuid.uuid4().hex,
        }
    )
    runtime = Runtime(build(settings), settings)
    try:
        await asyncio.to_thread(runtime.migrate)
        yield runtime
    finally:
        await runtime.database.dispose()
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        await admin.dispose()


async def _detractor(runtime: Runtime, tenant: TestTenant) -> None:
    """A detractor's answer: its case opens and the owner's email is due at once."""
    data = SurveyResponded(
        response_id=uuid.uuid4(),
        invitation_id=uuid.uuid4(),
        customer_id="customer-1",
        email="customer-1@shoppers.example",
        name="Jane Doe",
        touchpoint="webshop-purchase",
        score=2,
        comment="Nobody answered the phone.",
        responded_at=datetime.now(UTC) - timedelta(minutes=1),
    )
    event: Event[Any] = new_event(
        SURVEY_RESPONDED, tenant_id=tenant.tenant_id, data=data, subject="customer-1", source="/t"
    )
    async with runtime.database.uow() as uow:
        await handlers.record_answer(event, uow, now=datetime.now(UTC))
        await uow.commit()


async def _notification(runtime: Runtime) -> Any:
    async with runtime.database.uow() as uow:
        return (
            await uow.session.execute(
                text("SELECT id, attempts, sent_at, failed_at, next_attempt_at FROM alerting.notifications")
            )
        ).one()


async def test_no_row_is_locked_while_the_mail_server_is_slow(
    alerting_alone: Runtime, slow_mail_server: tuple[SlowMailServer, str]
) -> None:
    server, url = slow_mail_server
    tenant = await provision_tenant(alerting_alone)
    await _detractor(alerting_alone, tenant)
    target = SmtpTarget.from_url(url)

    async def send(message: EmailMessage) -> None:
        await send_email(target, message, timeout_seconds=30)

    delivery = asyncio.create_task(
        handlers.deliver_notifications(alerting_alone.database, send=send, mail_from=MAIL_FROM, limit=10)
    )
    try:
        await eventually(lambda: asyncio.to_thread(server.waiting.wait, 0.05), within=20)
        waiting = await _notification(alerting_alone)
        # The email is with the mail server; another connection can lock its row at once.
        async with alerting_alone.database.uow() as uow:
            locked = await uow.session.scalar(
                text("SELECT id FROM alerting.notifications WHERE id = :id FOR UPDATE NOWAIT"),
                {"id": waiting.id},
            )
        assert locked == waiting.id
        assert waiting.sent_at is None and waiting.attempts == 1
    finally:
        server.release.set()
    assert await asyncio.wait_for(delivery, timeout=30) == 1

    sent = await _notification(alerting_alone)
    assert sent.sent_at is not None and sent.failed_at is None
    assert len(server.accepted) == 1
    assert tenant.owner_email.encode() in server.accepted[0]


async def test_a_notifier_that_dies_after_its_claim_leaves_the_email_to_be_sent_again(
    alerting_alone: Runtime,
) -> None:
    tenant = await provision_tenant(alerting_alone)
    await _detractor(alerting_alone, tenant)
    delivered: list[EmailMessage] = []

    async def die(message: EmailMessage) -> None:
        raise RuntimeError("the notifier's process ends here")

    async def send(message: EmailMessage) -> None:
        delivered.append(message)

    with pytest.raises(RuntimeError):
        await handlers.deliver_notifications(
            alerting_alone.database, send=die, mail_from=MAIL_FROM, limit=10, lease=timedelta(seconds=1)
        )
    claimed = await _notification(alerting_alone)
    assert claimed.sent_at is None and claimed.failed_at is None and claimed.attempts == 1

    # Once the lease is over, the next notifier sends it.
    async def deliver() -> int:
        return await handlers.deliver_notifications(
            alerting_alone.database, send=send, mail_from=MAIL_FROM, limit=10
        )

    assert await eventually(deliver, within=20) == 1
    sent = await _notification(alerting_alone)
    assert sent.sent_at is not None and sent.attempts == 2
    [message] = delivered
    assert message["To"] == tenant.owner_email
