"""The survey against real Postgres, a real Kafka broker and a real SMTP server: a request becomes
an email, the email's link becomes an answer, and the answer becomes ``survey.responded.v1``."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from libs.common import topics
from libs.common.app import create_app
from libs.common.events import (
    CUSTOMER_UNSUBSCRIBED,
    SURVEY_BOUNCED,
    SURVEY_REQUESTED,
    SURVEY_RESPONDED,
    SURVEY_RESPONSE_UPDATED,
    SURVEY_SENT,
    SurveyRequested,
    new_event,
)
from libs.common.service import Runtime
from libs.devstack.ports import free_port
from libs.devstack.smtp_sink import messages_to
from services.survey import handlers
from services.survey.config import SurveySettings
from services.survey.domain.tokens import survey_token
from services.survey.main import build
from services.survey.models import Invitation
from services.survey.sender import Sender
from tests.conftest import (
    Mailbox,
    ServiceUnderTest,
    StartService,
    TestTenant,
    eventually,
    metric_value,
    produce,
    provision_tenant,
    read_topic,
)

SECRET = "integration-test-survey-secret-0123456789abcdef"
PUBLIC_URL = "http://testserver"


async def survey_service(start_service: StartService, **overrides: Any) -> ServiceUnderTest:
    return await start_service(
        build,
        SurveySettings,
        survey_token_secret=SECRET,
        survey_public_url=PUBLIC_URL,
        send_poll_seconds=0.05,
        **overrides,
    )


async def request_survey(
    kafka_bootstrap: str,
    tenant: TestTenant,
    *,
    customer: str,
    email: str,
    invitation_id: uuid.UUID | None = None,
    send_at: datetime | None = None,
    event_id: str | None = None,
    locale: str | None = None,
) -> uuid.UUID:
    """Put a ``survey.requested.v1`` on the topic, as the trigger does."""
    invitation_id = invitation_id or uuid.uuid4()
    event = new_event(
        SURVEY_REQUESTED,
        tenant_id=tenant.tenant_id,
        data=SurveyRequested(
            invitation_id=invitation_id,
            customer_id=customer,
            email=email,
            name="Jane Doe",
            locale=locale,
            touchpoint="webshop-purchase",
            trigger_event_id=f"order-{uuid.uuid4().hex[:8]}",
            trigger_event_type="purchase.completed.v1",
            send_at=send_at or datetime.now(UTC),
        ),
        subject=customer,
        source="/nps/trigger",
        event_id=event_id or str(invitation_id),
    )
    await produce(kafka_bootstrap, topics.SURVEY_REQUESTS, event.envelope.to_json(), key=customer.encode())
    return invitation_id


def unique_address() -> str:
    return f"jane-{uuid.uuid4().hex[:12]}@example.com"


def mail_to(mailbox: Path, address: str) -> list[EmailMessage]:
    return messages_to(mailbox, address)


async def email_to(mailbox: Path, address: str) -> EmailMessage:
    async def arrived() -> list[EmailMessage]:
        return mail_to(mailbox, address)

    messages: list[EmailMessage] = await eventually(arrived)
    assert len(messages) == 1, f"{len(messages)} emails to one invitee"
    return messages[0]


def score_links(message: EmailMessage) -> list[str]:
    html = message.get_body(("html",))
    assert html is not None
    return [link for link in re.findall(r'href="([^"]+)"', html.get_content()) if "/s/" in link]


async def invitations(service: ServiceUnderTest, tenant: TestTenant, customer: str) -> list[dict[str, Any]]:
    response = await service.client.get(
        "/v1/invitations", params={"customer": customer}, headers=tenant.headers
    )
    assert response.status_code == 200
    return response.json()["invitations"]  # type: ignore[no-any-return]


async def invitation_in(
    service: ServiceUnderTest, tenant: TestTenant, customer: str, invitation_id: uuid.UUID, status: str
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        for invitation in await invitations(service, tenant, customer):
            if invitation["invitation_id"] == str(invitation_id) and invitation["status"] == status:
                return invitation
        return None

    found: dict[str, Any] = await eventually(check)
    return found


class Asked(NamedTuple):
    service: ServiceUnderTest
    tenant: TestTenant
    customer: str
    address: str
    invitation_id: uuid.UUID


async def asked_once(start_service: StartService, kafka_bootstrap: str) -> Asked:
    """The survey service (default test settings), a new tenant, and one of its customers asked: the
    request is on the topic; whether it is sent yet is for the test to wait for."""
    service = await survey_service(start_service)
    tenant = await provision_tenant(service.runtime)
    customer, address = f"c-{uuid.uuid4().hex}", unique_address()
    invitation_id = await request_survey(kafka_bootstrap, tenant, customer=customer, email=address)
    return Asked(service, tenant, customer, address, invitation_id)


def is_event(event_type: str, invitation_id: uuid.UUID) -> Any:
    def match(record: Any) -> bool:
        body = json.loads(record.value)
        return bool(body["type"] == event_type and body["data"]["invitation_id"] == str(invitation_id))

    return match


def metric(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_a_request_becomes_an_email_whose_link_records_one_answer(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    service = await survey_service(start_service)
    tenant = await provision_tenant(service.runtime)
    customer, address = f"c-{uuid.uuid4().hex}", unique_address()
    kinds = ("score", "score_replaced", "follow_up")
    before = {k: await metric_value(service.client, "nps_survey_responses_total", kind=k) for k in kinds}
    sent_before = await metric_value(service.client, "nps_survey_emails_total", outcome="sent")

    invitation_id = await request_survey(kafka_bootstrap, tenant, customer=customer, email=address)

    message = await email_to(smtp_sink.directory, address)
    assert message["Message-ID"] == f"<{invitation_id}@nps.localhost>"
    text = message.get_body(("plain",))
    assert text is not None
    assert f"How likely are you to recommend {tenant.name} to a friend or colleague?" in text.get_content()
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    links = score_links(message)
    assert len(links) == 11
    assert [link.rsplit("/", 1)[1] for link in links] == [str(score) for score in range(11)]
    token = survey_token(SECRET, invitation_id)
    assert links[3] == f"{PUBLIC_URL}/s/{token}/3"
    sent = await invitation_in(service, tenant, customer, invitation_id, "sent")
    assert sent["sent_at"] is not None and sent["responded_at"] is None
    assert token not in json.dumps(sent)

    # Mail scanners fetch every link: looking must record nothing.
    page = await service.client.get(links[3].removeprefix(PUBLIC_URL))
    assert page.status_code == 200
    assert 'value="3" required checked' in page.text
    assert f'<form method="post" action="/s/{token}">' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert (await service.client.head(links[9].removeprefix(PUBLIC_URL))).status_code == 200
    assert (await service.client.get(f"/s/{token}")).status_code == 200
    [still_open] = await invitations(service, tenant, customer)
    assert (still_open["status"], still_open["responded_at"]) == ("sent", None)

    # The score counts as soon as it is confirmed; the page then asks the follow-up questions.
    answered = await service.client.post(f"/s/{token}", data={"score": "3"})
    assert answered.status_code == 200
    assert "We have your score of 3." in answered.text
    assert "What went wrong, and what should we do better?" in answered.text
    assert f'<form method="post" action="/s/{token}/more">' in answered.text
    assert "Change my score" in answered.text
    [recorded] = await invitations(service, tenant, customer)
    assert recorded["status"] == "responded" and recorded["responded_at"] is not None

    records = await read_topic(
        kafka_bootstrap,
        topics.SURVEY_EVENTS,
        lambda record: (
            is_event(SURVEY_RESPONDED, invitation_id)(record) or is_event(SURVEY_SENT, invitation_id)(record)
        ),
        count=2,
    )
    by_type = {json.loads(record.value)["type"]: record for record in records}
    assert set(by_type) == {SURVEY_SENT, SURVEY_RESPONDED}
    record = by_type[SURVEY_RESPONDED]
    event = json.loads(record.value)
    assert record.key == customer.encode()
    assert event["tenantid"] == tenant.tenant_id
    assert event["id"] == event["data"]["response_id"]
    assert {
        k: event["data"].get(k) for k in ("customer_id", "email", "name", "touchpoint", "score", "comment")
    } == {
        "customer_id": customer,
        "email": address,
        "name": "Jane Doe",
        "touchpoint": "webshop-purchase",
        "score": 3,
        "comment": None,
    }
    response_id = event["data"]["response_id"]

    # The rest later: the why and "have you recommended us" update the response.
    more = await service.client.post(
        f"/s/{token}/more", data={"comment": "Delivery was late.", "recommended": "no"}
    )
    assert more.status_code == 200 and "Thank you for your answers!" in more.text
    # Inside the grace period a second score replaces the first.
    changed = await service.client.post(f"/s/{token}", data={"score": "4"})
    assert changed.status_code == 200 and "We have your score of 4." in changed.text
    updates = await read_topic(
        kafka_bootstrap,
        topics.SURVEY_EVENTS,
        lambda record: (
            json.loads(record.value)["type"] == SURVEY_RESPONSE_UPDATED
            and json.loads(record.value)["data"]["response_id"] == response_id
        ),
        count=2,
    )
    revisions = sorted((json.loads(r.value)["data"] for r in updates), key=lambda data: data["revision"])
    assert [(d["revision"], d["score"], d["comment"], d["recommended"]) for d in revisions] == [
        (2, 3, "Delivery was late.", False),
        (3, 4, "Delivery was late.", False),
    ]

    # This test's answers only (the counters are process-wide): one score, one change, one follow-up.
    after = {k: await metric_value(service.client, "nps_survey_responses_total", kind=k) for k in kinds}
    assert {k: after[k] - before[k] for k in kinds} == {"score": 1, "score_replaced": 1, "follow_up": 1}
    assert await metric_value(service.client, "nps_survey_emails_total", outcome="sent") >= sent_before + 1


async def test_a_repeated_request_sends_one_email(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    service, tenant, customer, address, invitation_id = await asked_once(start_service, kafka_bootstrap)
    await invitation_in(service, tenant, customer, invitation_id, "sent")
    # The same event redelivered, and the same invitation under another event id.
    await request_survey(
        kafka_bootstrap, tenant, customer=customer, email=address, invitation_id=invitation_id
    )
    await request_survey(
        kafka_bootstrap,
        tenant,
        customer=customer,
        email=address,
        invitation_id=invitation_id,
        event_id="other",
    )
    # Same key, same partition: once this one is sent, the repeats before it have been handled.
    marker = await request_survey(kafka_bootstrap, tenant, customer=customer, email=unique_address())
    await invitation_in(service, tenant, customer, marker, "sent")

    assert len(mail_to(smtp_sink.directory, address)) == 1
    assert [i["invitation_id"] for i in await invitations(service, tenant, customer)].count(
        str(invitation_id)
    ) == 1


async def test_an_invitation_left_sending_by_a_crashed_sender_is_sent(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    service = await survey_service(start_service)
    tenant = await provision_tenant(service.runtime)
    customer, address = f"c-{uuid.uuid4().hex}", unique_address()
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    invitation_id = await request_survey(
        kafka_bootstrap, tenant, customer=customer, email=address, send_at=tomorrow
    )
    await invitation_in(service, tenant, customer, invitation_id, "scheduled")

    # What a sender that died mid-send leaves behind.
    async with service.runtime.database.uow() as uow:
        await uow.session.execute(
            update(Invitation)
            .where(Invitation.id == invitation_id)
            .values(status="sending", sending_started_at=datetime.now(UTC) - timedelta(minutes=5), attempts=1)
        )
        await uow.commit()

    await email_to(smtp_sink.directory, address)
    sent = await invitation_in(service, tenant, customer, invitation_id, "sent")
    assert sent["attempts"] == 2


class RefuseEveryone:
    def __init__(self, reply: str) -> None:
        self.reply = reply

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        return self.reply


RefusingSmtp = Callable[[str], str]


@pytest.fixture
def refusing_smtp() -> Iterator[RefusingSmtp]:
    """Real SMTP servers that refuse every recipient with the given reply; gives their URL."""
    controllers: list[Controller] = []

    def start(reply: str) -> str:
        port = free_port()
        controller = Controller(
            RefuseEveryone(reply), hostname="127.0.0.1", port=port, server_hostname="refuser"
        )
        controller.start()
        controllers.append(controller)
        return f"smtp://127.0.0.1:{port}"

    yield start
    for controller in controllers:
        controller.stop()


@asynccontextmanager
async def survey_alone(pg_url: str, **overrides: Any) -> AsyncIterator[tuple[ServiceUnderTest, Sender]]:
    """A survey service on a database of its own, with its sender driven by the test.

    The session's shared survey service has a sender too; on a shared database it would race this
    one for the invitations and deliver them through the ordinary SMTP sink.
    """
    database = f"survey_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{database}"'))
    settings = SurveySettings.model_validate(
        {
            "database_url": make_url(pg_url).set(database=database).render_as_string(hide_password=False),
            "nps_env": "test",
            "admin_token": "test-admin-token-" + uuid.uuid4().hex,
            "survey_token_secret": SECRET,
            "survey_public_url": PUBLIC_URL,
            **overrides,
        }
    )
    runtime = Runtime(build(settings), settings)
    try:
        await asyncio.to_thread(runtime.migrate)
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield ServiceUnderTest(runtime, client), Sender(runtime.database, settings)
    finally:
        await runtime.database.dispose()
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        await admin.dispose()


async def schedule(service: ServiceUnderTest, tenant: TestTenant, customer: str) -> uuid.UUID:
    """What consuming a ``survey.requested.v1`` does, without the broker."""
    invitation_id = uuid.uuid4()
    request = new_event(
        SURVEY_REQUESTED,
        tenant_id=tenant.tenant_id,
        data=SurveyRequested(
            invitation_id=invitation_id,
            customer_id=customer,
            email=unique_address(),
            touchpoint="support-ticket",
            trigger_event_id=f"ticket-{uuid.uuid4().hex[:8]}",
            trigger_event_type="ticket.closed.v1",
            send_at=datetime.now(UTC),
        ),
        subject=customer,
        source="/nps/trigger",
    )
    async with service.runtime.database.uow() as uow:
        await handlers.handle_consumed(
            [request], uow, token_secret=SECRET, token_ttl=timedelta(days=30), now=datetime.now(UTC)
        )
        await uow.commit()
    return invitation_id


async def test_a_permanently_refused_recipient_fails_without_retry(
    pg_url: str, refusing_smtp: RefusingSmtp
) -> None:
    async with survey_alone(pg_url, smtp_url=refusing_smtp("550 5.1.1 no such user")) as (service, sender):
        tenant = await provision_tenant(service.runtime)
        customer = f"c-{uuid.uuid4().hex}"
        before = metric(
            (await service.client.get("/metrics")).text, 'nps_survey_emails_total{outcome="failed"}'
        )
        await schedule(service, tenant, customer)

        assert await sender.send_due() == 1

        [failed] = await invitations(service, tenant, customer)
        assert (failed["status"], failed["attempts"], failed["sent_at"]) == ("failed", 1, None)
        assert "550" in failed["last_error"] and "@" not in failed["last_error"]
        after = metric(
            (await service.client.get("/metrics")).text, 'nps_survey_emails_total{outcome="failed"}'
        )
        assert after >= before + 1
        assert await sender.send_due() == 0

        # "No such user" is a hard bounce: the trigger is told, so nobody asks that address again.
        async with service.runtime.database.uow() as uow:
            rows = (
                await uow.session.execute(
                    text("SELECT event_type, topic, payload FROM survey.outbox WHERE key = :customer"),
                    {"customer": customer},
                )
            ).all()
        by_type = {row.event_type: row for row in rows}
        assert {CUSTOMER_UNSUBSCRIBED, SURVEY_BOUNCED} <= set(by_type)
        hygiene = json.loads(by_type[CUSTOMER_UNSUBSCRIBED].payload)
        assert by_type[CUSTOMER_UNSUBSCRIBED].topic == topics.CUSTOMERS
        assert hygiene["data"]["reason"] == "hard_bounce" and hygiene["data"]["customer_id"] == customer


async def test_a_temporary_refusal_is_tried_again_later_until_the_attempts_run_out(
    pg_url: str, refusing_smtp: RefusingSmtp
) -> None:
    smtp_url = refusing_smtp("451 4.3.0 try again later")
    async with survey_alone(pg_url, smtp_url=smtp_url, retry_base_seconds=600, max_send_attempts=2) as (
        service,
        sender,
    ):
        tenant = await provision_tenant(service.runtime)
        customer = f"c-{uuid.uuid4().hex}"
        invitation_id = await schedule(service, tenant, customer)

        tried_at = datetime.now(UTC)
        assert await sender.send_due() == 1
        [waiting] = await invitations(service, tenant, customer)
        assert (waiting["status"], waiting["attempts"]) == ("scheduled", 1)
        assert "451" in waiting["last_error"]
        assert datetime.fromisoformat(waiting["send_at"]) >= tried_at + timedelta(seconds=600)
        assert await sender.send_due() == 0

        # Bring the retry forward instead of waiting ten minutes; the second refusal is the last.
        async with service.runtime.database.uow() as uow:
            await uow.session.execute(
                update(Invitation).where(Invitation.id == invitation_id).values(send_at=datetime.now(UTC))
            )
            await uow.commit()
        assert await sender.send_due() == 1
        [failed] = await invitations(service, tenant, customer)
        assert (failed["status"], failed["attempts"]) == ("failed", 2)
        assert "gave up after 2 attempts" in failed["last_error"]


async def test_an_expired_link_is_closed_and_never_mailed(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    service = await survey_service(start_service)
    tenant = await provision_tenant(service.runtime)
    customer, address = f"c-{uuid.uuid4().hex}", unique_address()
    long_ago = datetime.now(UTC) - timedelta(days=31)
    invitation_id = await request_survey(
        kafka_bootstrap, tenant, customer=customer, email=address, send_at=long_ago
    )

    failed = await invitation_in(service, tenant, customer, invitation_id, "failed")
    assert failed["last_error"] == "expired before it could be sent"
    token = survey_token(SECRET, invitation_id)
    for response in (
        await service.client.get(f"/s/{token}"),
        await service.client.get(f"/s/{token}/9"),
        await service.client.post(f"/s/{token}", data={"score": "9"}),
    ):
        assert response.status_code == 410
        assert "This survey has closed" in response.text
    assert mail_to(smtp_sink.directory, address) == []


async def test_answers_are_checked_and_unknown_links_are_not_found(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    service = await survey_service(start_service)
    tenant = await provision_tenant(service.runtime)
    customer = f"c-{uuid.uuid4().hex}"
    # Not due yet, so not sent: someone holding the link may still answer.
    next_week = datetime.now(UTC) + timedelta(days=7)
    invitation_id = await request_survey(
        kafka_bootstrap, tenant, customer=customer, email=unique_address(), send_at=next_week
    )
    await invitation_in(service, tenant, customer, invitation_id, "scheduled")
    token = survey_token(SECRET, invitation_id)

    for score, problem in (("11", "whole number from 0 to 10"), ("", "choose a score"), ("ten", "0 to 10")):
        refused = await service.client.post(f"/s/{token}", data={"score": score})
        assert refused.status_code == 422
        assert problem in refused.text
    too_long = await service.client.post(f"/s/{token}", data={"score": "8", "comment": "x" * 5001})
    assert too_long.status_code == 422 and "too long" in too_long.text
    # Follow-up answers before any score are refused, and nothing is recorded.
    early = await service.client.post(f"/s/{token}/more", data={"comment": "hi"})
    assert early.status_code == 409
    [untouched] = await invitations(service, tenant, customer)
    assert untouched["status"] == "scheduled"

    for path in (
        "/s/" + "A" * 43,
        "/s/" + "A" * 43 + "/5",
        "/s/short",
        f"/s/{survey_token('other', invitation_id)}",
    ):
        missing = await service.client.get(path)
        assert missing.status_code == 404 and "could not find this survey" in missing.text
    assert (await service.client.post("/s/" + "A" * 43, data={"score": "5"})).status_code == 404

    assert (await service.client.post(f"/s/{token}", data={"score": "8"})).status_code == 200
    [answered] = await invitations(service, tenant, customer)
    assert answered["status"] == "responded"
    for fields, problem in (
        ({"csat": "6"}, "not one of the choices"),
        ({"effort": "0"}, "not one of the choices"),
        ({"recommended": "maybe"}, "not one of the choices"),
        ({"comment": "x" * 5001}, "too long"),
    ):
        refused = await service.client.post(f"/s/{token}/more", data={"comment": "kept", **fields})
        assert refused.status_code == 422, fields
        assert problem in refused.text
    assert (await service.client.post(f"/s/{token}/more", data={"comment": "ok"})).status_code == 200


async def test_after_the_grace_period_the_score_is_final(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    service = await survey_service(start_service, answer_grace_minutes=0)
    tenant = await provision_tenant(service.runtime)
    customer = f"c-{uuid.uuid4().hex}"
    invitation_id = await request_survey(kafka_bootstrap, tenant, customer=customer, email=unique_address())
    token = survey_token(SECRET, invitation_id)
    await eventually(lambda: _has_invitation(service, tenant, customer))
    first = await service.client.post(f"/s/{token}", data={"score": "9"})
    assert first.status_code == 200 and "Change my score" not in first.text
    again = await service.client.post(f"/s/{token}", data={"score": "2"})
    assert again.status_code == 409 and "already answered" in again.text
    # The page now offers the follow-up questions, not the scale.
    shown = await service.client.get(f"/s/{token}/5")
    assert "What do you like most about us?" in shown.text
    assert 'name="score"' not in shown.text


async def _has_invitation(service: ServiceUnderTest, tenant: TestTenant, customer: str) -> bool:
    return bool(await invitations(service, tenant, customer))


async def test_the_invitation_list_needs_a_key_and_shows_only_the_own_tenant(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    service = await survey_service(start_service)
    tenant, other = await asyncio.gather(provision_tenant(service.runtime), provision_tenant(service.runtime))
    customer = f"c-{uuid.uuid4().hex}"
    later = datetime.now(UTC) + timedelta(days=1)
    invitation_id = await request_survey(
        kafka_bootstrap, tenant, customer=customer, email=unique_address(), send_at=later
    )
    await invitation_in(service, tenant, customer, invitation_id, "scheduled")

    assert await invitations(service, other, customer) == []
    response = await service.client.get("/v1/invitations", params={"customer": customer})
    assert response.status_code == 401
