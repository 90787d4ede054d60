"""The closed loop: a detractor's answer on Kafka opens a case, its owner is emailed, the case is
worked through the API, and a case nobody contacted in time is escalated."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import text

from libs.common import topics
from libs.common.events import (
    SURVEY_RESPONDED,
    SURVEY_RESPONSE_UPDATED,
    Event,
    SurveyResponded,
    SurveyResponseUpdated,
    new_event,
)
from libs.devstack.smtp_sink import messages_to
from services.alerting import handlers
from services.alerting.config import AlertingSettings
from services.alerting.domain.sla import DEFAULT_POLICY, Priority, clock
from services.alerting.main import build
from tests.conftest import (
    Mailbox,
    ServiceUnderTest,
    StartService,
    TestTenant,
    eventually,
    produce,
    provision_tenant,
    read_topic,
)

pytestmark = pytest.mark.integration


async def _alerting(start_service: StartService, **overrides: Any) -> ServiceUnderTest:
    # The SLA loop checks once at start and then not again during a test: the tests drive it.
    values: dict[str, Any] = {
        "sla_check_seconds": 3600,
        "notify_poll_seconds": 0.1,
        "notify_delay_seconds": 0,
        # Chat messages go to a receiver on this machine (tests/integration/test_closed_loop.py).
        "outbound_allow_private": True,
        **overrides,
    }
    return await start_service(build, AlertingSettings, **values)


def _answer(
    tenant: TestTenant,
    *,
    score: int,
    responded_at: datetime | None = None,
    customer_id: str | None = None,
    comment: str | None = "The delivery was two weeks late.",
    response_id: uuid.UUID | None = None,
) -> Event[Any]:
    customer = customer_id or f"customer-{uuid.uuid4().hex[:8]}"
    data = SurveyResponded(
        response_id=response_id or uuid.uuid4(),
        invitation_id=uuid.uuid4(),
        customer_id=customer,
        email=f"{customer}@shoppers.example",
        name="Jane Doe",
        touchpoint="webshop-purchase",
        score=score,
        comment=comment,
        responded_at=responded_at or datetime.now(UTC) - timedelta(minutes=1),
    )
    return new_event(
        SURVEY_RESPONDED, tenant_id=tenant.tenant_id, data=data, subject=customer, source="/tests"
    )


async def _publish(bootstrap: str, event: Event[Any]) -> None:
    subject = event.envelope.subject or ""
    await produce(bootstrap, topics.SURVEY_EVENTS, event.envelope.to_json(), key=subject.encode())


async def _cases(sut: ServiceUnderTest, tenant: TestTenant, **params: str) -> list[dict[str, Any]]:
    response = await sut.client.get("/v1/cases", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    cases: list[dict[str, Any]] = response.json()["cases"]
    return cases


def _mail_to(mailbox: Mailbox, address: str) -> list[EmailMessage]:
    return messages_to(mailbox.directory, address)


def _body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


def _followup(type_: str, case_id: str, **data: Any) -> Any:
    def matches(record: Any) -> bool:
        event = json.loads(record.value)
        return (
            event["type"] == type_
            and event["data"]["case_id"] == case_id
            and all(event["data"].get(name) == value for name, value in data.items())
        )

    return matches


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_a_detractor_opens_a_case_and_its_owner_is_emailed(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    answer = _answer(tenant, score=3)

    await _publish(kafka_bootstrap, answer)

    (case,) = await eventually(lambda: _cases(sut, tenant), within=30)
    responded_at = answer.data.responded_at
    # A new tenant's SLA: score 3 is urgent, first contact within 4 business hours (Mon-Fri 09-17 UTC).
    due = clock(responded_at, Priority.URGENT, DEFAULT_POLICY).first_contact_due
    assert case["status"] == "open"
    assert case["score"] == 3
    assert case["touchpoint"] == "webshop-purchase"
    assert case["customer_id"] == answer.data.customer_id
    assert case["comment"] == "The delivery was two weeks late."
    assert case["owner_email"] == tenant.owner_email
    assert _at(case["opened_at"]) == responded_at
    assert _at(case["due_at"]) == due
    assert case["breached"] is False and case["breached_at"] is None
    assert "email" not in case

    single = await sut.client.get(f"/v1/cases/{case['id']}", headers=tenant.headers)
    assert single.status_code == 200
    assert single.json() == case

    async def owner_mail() -> list[EmailMessage]:
        return _mail_to(smtp_sink, tenant.owner_email)

    (mail,) = await eventually(owner_mail, within=20)
    body = _body(mail)
    assert mail["From"] == "NPS Alerts <alerts@nps.localhost>"
    assert "score 3" in mail["Subject"]
    assert "A detractor (score 3) answered the survey at touchpoint webshop-purchase" in body
    assert "The delivery was two weeks late." in body
    assert f"due by {due.strftime('%Y-%m-%d %H:%M')} UTC" in body
    assert f"PATCH /v1/cases/{case['id']}" in body

    (opened,) = await read_topic(
        kafka_bootstrap, topics.FOLLOWUPS, _followup("followup.opened.v1", case["id"], score=3)
    )
    event = json.loads(opened.value)
    assert event["tenantid"] == tenant.tenant_id
    assert _at(event["data"]["due_at"]) == due
    assert event["data"]["priority"] == "urgent"
    assert "no rule matched" in event["data"]["routing_reason"]
    assert event["data"]["owner_email"] == tenant.owner_email

    # The platform's own log lines; the test's Kafka client and mail sink log raw payloads at debug.
    logged = [
        " ".join(map(str, record.__dict__.values()))
        for record in caplog.records
        if record.name.startswith(("services.", "libs.common."))
    ]
    assert any("followup.opened" in line for line in logged)
    assert any("notification.sent" in line for line in logged)
    assert not [line for line in logged if answer.data.email in line or tenant.owner_email in line]


async def test_promoters_and_passives_open_no_case(start_service: StartService, kafka_bootstrap: str) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    customer = f"customer-{uuid.uuid4().hex[:8]}"

    await _publish(kafka_bootstrap, _answer(tenant, score=9, customer_id=customer))
    await _publish(kafka_bootstrap, _answer(tenant, score=7, customer_id=customer))
    # Same customer, so the same partition: once this one has a case the others were handled too.
    await _publish(kafka_bootstrap, _answer(tenant, score=6, customer_id=customer))

    cases = await eventually(lambda: _cases(sut, tenant), within=30)
    assert [case["score"] for case in cases] == [6]


async def test_the_same_answer_twice_opens_one_case_and_sends_one_email(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    customer = f"customer-{uuid.uuid4().hex[:8]}"
    answer = _answer(tenant, score=2, customer_id=customer)
    # The same answer again under another event id, as a re-publishing producer would send it.
    again = new_event(
        SURVEY_RESPONDED,
        tenant_id=tenant.tenant_id,
        data=answer.data,
        subject=customer,
        source="/tests",
    )
    later = _answer(tenant, score=4, customer_id=customer)

    for event in (answer, answer, again, later):
        await _publish(kafka_bootstrap, event)

    async def both_cases_and_mails() -> bool:
        cases = await _cases(sut, tenant)
        return len(cases) >= 2 and len(_mail_to(smtp_sink, tenant.owner_email)) >= 2

    await eventually(both_cases_and_mails, within=30)
    cases = await _cases(sut, tenant)
    assert sorted(case["score"] for case in cases) == [2, 4]
    mails = _mail_to(smtp_sink, tenant.owner_email)
    assert sorted("score 2" in m["Subject"] for m in mails) == [False, True]


async def test_a_case_is_contacted_then_resolved_and_patch_cannot_move_it_back(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    await _publish(kafka_bootstrap, _answer(tenant, score=1))
    (case,) = await eventually(lambda: _cases(sut, tenant), within=30)
    path = f"/v1/cases/{case['id']}"

    contacted = await sut.client.patch(
        path, json={"status": "contacted", "note": "Called, she wants a refund"}, headers=tenant.headers
    )
    assert contacted.status_code == 200, contacted.text
    assert contacted.json()["status"] == "contacted"
    assert contacted.json()["contacted_at"] is not None
    assert contacted.json()["note"] == "Called, she wants a refund"

    resolved = await sut.client.patch(path, json={"status": "resolved"}, headers=tenant.headers)
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["resolved_at"] is not None
    assert resolved.json()["contacted_at"] == contacted.json()["contacted_at"]

    backwards = await sut.client.patch(path, json={"status": "contacted"}, headers=tenant.headers)
    assert backwards.status_code == 409
    assert backwards.json()["error"] == "conflict"
    assert "from resolved to contacted" in backwards.json()["detail"]
    # Reopening is its own action (POST /v1/cases/{id}/reopen), not a PATCH.
    assert "open (by reopening it)" in backwards.json()["detail"]

    assert [c["id"] for c in await _cases(sut, tenant, status="resolved")] == [case["id"]]
    assert await _cases(sut, tenant, status="open") == []

    await read_topic(
        kafka_bootstrap,
        topics.FOLLOWUPS,
        lambda record: (
            _followup("followup.updated.v1", case["id"], status="contacted", breached=False)(record)
            or _followup("followup.updated.v1", case["id"], status="resolved", breached=False)(record)
        ),
        count=2,
    )


async def test_cases_are_private_to_their_tenant_and_updates_are_validated(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    stranger = await provision_tenant(sut.runtime)
    await _publish(kafka_bootstrap, _answer(tenant, score=0))
    (case,) = await eventually(lambda: _cases(sut, tenant), within=30)
    path = f"/v1/cases/{case['id']}"

    assert (await sut.client.get(path, headers=stranger.headers)).status_code == 404
    foreign = await sut.client.patch(path, json={"status": "resolved"}, headers=stranger.headers)
    assert foreign.status_code == 404
    assert await _cases(sut, stranger) == []
    unknown = await sut.client.patch(
        f"/v1/cases/{uuid.uuid4()}", json={"status": "resolved"}, headers=tenant.headers
    )
    assert unknown.status_code == 404
    assert (await sut.client.get(path)).status_code == 401

    extra = await sut.client.patch(path, json={"status": "resolved", "owner": "x"}, headers=tenant.headers)
    assert extra.status_code == 422
    reopen = await sut.client.patch(path, json={"status": "open"}, headers=tenant.headers)
    assert reopen.status_code == 422
    long_note = await sut.client.patch(
        path, json={"status": "resolved", "note": "x" * 2001}, headers=tenant.headers
    )
    assert long_note.status_code == 422
    still = await sut.client.get(path, headers=tenant.headers)
    assert still.json()["status"] == "open"


async def test_a_case_nobody_contacted_in_time_breaches_and_is_escalated_to_the_tenants_people(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    cx_manager = f"cx-{uuid.uuid4().hex[:8]}@acme.example"
    settings = await sut.client.put(
        "/v1/desk/settings", json={"cx_manager_emails": [cx_manager]}, headers=tenant.headers
    )
    assert settings.status_code == 200, settings.text
    now = datetime.now(UTC)
    # Ten days ago: past every SLA time a new tenant's business hours give, whatever today is.
    forgotten = _answer(tenant, score=2, responded_at=now - timedelta(days=10))
    handled = _answer(tenant, score=5, responded_at=now - timedelta(minutes=1))
    await _publish(kafka_bootstrap, forgotten)
    await _publish(kafka_bootstrap, handled)
    cases = await eventually(lambda: _by_customer(sut, tenant, 2), within=30)
    forgotten_case = cases[forgotten.data.customer_id]
    handled_case = cases[handled.data.customer_id]
    contacted = await sut.client.patch(
        f"/v1/cases/{handled_case['id']}", json={"status": "contacted"}, headers=tenant.headers
    )
    assert contacted.status_code == 200

    check_at = datetime.now(UTC) + timedelta(minutes=2)
    async with sut.runtime.database.uow() as uow:
        taken = await handlers.run_clock(uow, check_at)
        await uow.commit()
    assert taken >= 3

    after = await _by_customer(sut, tenant, 2)
    assert after[forgotten.data.customer_id]["breached"] is True
    assert after[forgotten.data.customer_id]["status"] == "open"
    assert _at(after[forgotten.data.customer_id]["breached_at"]) == check_at
    assert after[handled.data.customer_id]["breached"] is False
    assert [c["id"] for c in await _cases(sut, tenant, breached="true")] == [forgotten_case["id"]]

    async def mail_to(address: str, subject: str) -> list[EmailMessage]:
        return [
            m
            for m in _mail_to(smtp_sink, address)
            if forgotten_case["id"] in _body(m) and subject in m["Subject"]
        ]

    # The owner (here the tenant's owner email: no routing rules) hears of the breach; the CX
    # manager the tenant named hears of the escalation. Nobody else does.
    (overdue,) = await eventually(lambda: mail_to(tenant.owner_email, "overdue"), within=20)
    assert "not been contacted in time" in _body(overdue)
    (escalation,) = await eventually(lambda: mail_to(cx_manager, "Escalated to you (CX manager)"), within=20)
    assert forgotten.data.customer_id in _body(escalation)
    await read_topic(
        kafka_bootstrap,
        topics.FOLLOWUPS,
        _followup("followup.updated.v1", forgotten_case["id"], status="open", breached=True),
    )

    # A second run of the clock takes no step twice.
    async with sut.runtime.database.uow() as uow:
        assert await handlers.run_clock(uow, check_at + timedelta(minutes=1)) == 0
        await uow.commit()
    assert (await _by_customer(sut, tenant, 2))[forgotten.data.customer_id]["breached_at"] == after[
        forgotten.data.customer_id
    ]["breached_at"]
    await asyncio.sleep(1)
    assert len(_mail_to(smtp_sink, cx_manager)) == 1


async def _by_customer(sut: ServiceUnderTest, tenant: TestTenant, count: int) -> dict[str, dict[str, Any]]:
    cases = await _cases(sut, tenant)
    return {case["customer_id"]: case for case in cases} if len(cases) >= count else {}


def _update(answer: Event[Any], *, revision: int, score: int, comment: str | None) -> Event[Any]:
    first = answer.data
    data = SurveyResponseUpdated(
        response_id=first.response_id,
        invitation_id=first.invitation_id,
        customer_id=first.customer_id,
        touchpoint=first.touchpoint,
        revision=revision,
        score=score,
        comment=comment,
        recommended=False,
        responded_at=first.responded_at,
        updated_at=datetime.now(UTC),
    )
    return new_event(
        SURVEY_RESPONSE_UPDATED,
        tenant_id=answer.tenant_id,
        data=data,
        subject=first.customer_id,
        source="/tests",
    )


async def _pending_notice(sut: ServiceUnderTest, tenant: TestTenant) -> Any:
    async with sut.runtime.database.uow() as uow:
        return (
            await uow.session.execute(
                text(
                    "SELECT n.body, n.sent_at, n.failed_at, n.last_error, "
                    "n.next_attempt_at - n.created_at AS wait "
                    "FROM alerting.notifications n JOIN alerting.followup_cases c ON c.id = n.case_id "
                    "WHERE c.tenant_id = :tenant AND n.kind = 'case_opened'"
                ),
                {"tenant": uuid.UUID(tenant.tenant_id)},
            )
        ).one()


async def _handle(sut: ServiceUnderTest, *events: Event[Any], delay: timedelta) -> None:
    """The consumer's handler on the real database, one event after the other, as the survey page
    sends them (the score, then the why a minute later). Called directly: with a delay of minutes
    the session's notifier will not send the email during the test."""
    for event in events:
        async with sut.runtime.database.uow() as uow:
            await handlers.record_answer(event, uow, now=datetime.now(UTC), notify_delay=delay)
            await uow.commit()


async def test_the_owner_email_waits_for_the_why_and_carries_it(start_service: StartService) -> None:
    """The score comes first and the "why" a minute later: the case-opened email waits for it."""
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    answer = _answer(tenant, score=2, comment=None)
    await _handle(sut, answer, delay=timedelta(minutes=2))
    waiting = await _pending_notice(sut, tenant)
    assert waiting.sent_at is None and waiting.wait >= timedelta(minutes=2)
    assert "(no comment)" in waiting.body

    await _handle(
        sut, _update(answer, revision=2, score=2, comment="Nobody answered the phone."), delay=timedelta(0)
    )
    rewritten = await _pending_notice(sut, tenant)
    assert "Nobody answered the phone." in rewritten.body
    assert "Recommended us in the last 12 months: no" in rewritten.body
    assert rewritten.sent_at is None and rewritten.wait >= timedelta(minutes=2)


async def test_a_mis_click_corrected_before_the_email_sends_no_email(start_service: StartService) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    answer = _answer(tenant, score=1, comment=None)
    await _handle(
        sut, answer, _update(answer, revision=2, score=10, comment=None), delay=timedelta(minutes=2)
    )
    [case] = await _cases(sut, tenant)
    assert case["status"] == "resolved"
    withdrawn = await _pending_notice(sut, tenant)
    assert withdrawn.sent_at is None and withdrawn.failed_at is not None
    assert "changed the score before the email went out" in withdrawn.last_error
