"""After sending: unsubscribes, bounces, reminders, the funnel and tenant settings, as the
recipient, the mail provider and the tenant see them (real Postgres, broker and SMTP sink)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from sqlalchemy import text

from libs.common import topics
from libs.common.events import (
    CUSTOMER_UNSUBSCRIBED,
    SURVEY_BOUNCED,
    SURVEY_OPENED,
    SURVEY_REMINDED,
    SURVEY_UNSUBSCRIBED,
)
from services.survey.domain.tokens import survey_token
from tests.conftest import Mailbox, StartService, eventually, provision_tenant, read_topic
from tests.integration.test_survey_flow import (
    PUBLIC_URL,
    SECRET,
    asked_once,
    email_to,
    invitation_in,
    invitations,
    mail_to,
    request_survey,
    survey_service,
    unique_address,
)
from tests.support.mail import every_link

BOUNCE_TOKEN = "bounce-webhook-token-for-tests-0123456789"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "bounces"


def _of_type(event_type: str, **data: object):  # type: ignore[no-untyped-def]
    def match(record: object) -> bool:
        event = json.loads(record.value)  # type: ignore[attr-defined]
        return bool(event["type"] == event_type and all(event["data"].get(k) == v for k, v in data.items()))

    return match


async def test_one_click_unsubscribe_stops_every_later_survey_and_tells_the_trigger(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    service, tenant, customer, address, first = await asked_once(start_service, kafka_bootstrap)
    message = await email_to(smtp_sink.directory, address)
    token = survey_token(SECRET, first)
    unsubscribe = message["List-Unsubscribe"].strip().strip("<>")
    assert unsubscribe.endswith(f"/u/{token}")

    # A GET (a scanner, a preview) only asks to confirm.
    asked = await service.client.get(f"/u/{token}")
    assert asked.status_code == 200 and f'<form method="post" action="/u/{token}">' in asked.text
    # RFC 8058: the mail client POSTs List-Unsubscribe=One-Click.
    done = await service.client.post(
        f"/u/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert (await service.client.post(f"/u/{token}")).status_code == 200  # twice is harmless

    [hygiene] = await read_topic(
        kafka_bootstrap, topics.CUSTOMERS, _of_type(CUSTOMER_UNSUBSCRIBED, customer_id=customer)
    )
    assert json.loads(hygiene.value)["data"]["reason"] == "unsubscribed"
    await read_topic(
        kafka_bootstrap, topics.SURVEY_EVENTS, _of_type(SURVEY_UNSUBSCRIBED, customer_id=customer)
    )

    # Even if a later request slips through, the address is never emailed again.
    later = await request_survey(kafka_bootstrap, tenant, customer=customer, email=address.upper())
    failed = await invitation_in(service, tenant, customer, later, "failed")
    assert "unsubscribed" in failed["last_error"]
    assert len(mail_to(smtp_sink.directory, address)) == 1


async def test_bounce_reports_suppress_the_address_and_tell_the_trigger(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    service = await survey_service(start_service, bounce_webhook_token=BOUNCE_TOKEN)
    tenant = await provision_tenant(service.runtime)
    customer, address = f"c-{uuid.uuid4().hex}", unique_address()
    invitation_id = await request_survey(kafka_bootstrap, tenant, customer=customer, email=address)
    await email_to(smtp_sink.directory, address)
    auth = {"Authorization": f"Bearer {BOUNCE_TOKEN}"}

    # A real published DSN, pointed at our message: the Message-ID names the invitation.
    dsn = (FIXTURES / "rfc3464_example2_multi_recipient.eml").read_bytes()
    assert (await service.client.post("/v1/bounces/dsn", content=dsn)).status_code == 401
    assert (await service.client.post("/v1/bounces/dsn", content=b"hello", headers=auth)).status_code == 422

    generic = {"email": address, "type": "hard_bounce", "message_id": f"<{invitation_id}@nps.localhost>"}
    forged = await service.client.post(
        "/v1/bounces/generic", json=generic, headers={"Authorization": "Bearer x"}
    )
    assert forged.status_code == 401
    accepted = await service.client.post("/v1/bounces/generic", json=generic, headers=auth)
    assert accepted.status_code == 200
    assert accepted.json()["hard_bounces"] == 1 and accepted.json()["invitations_matched"] == 1
    assert (await service.client.post("/v1/bounces/nope", json=generic, headers=auth)).status_code == 404
    # Providers that cannot send headers put the token in the URL instead.
    in_path = await service.client.post(f"/v1/bounces/generic/{BOUNCE_TOKEN}", json=generic)
    assert in_path.status_code == 200 and in_path.json()["invitations_matched"] == 1
    assert (await service.client.post("/v1/bounces/generic/wrong", json=generic)).status_code == 401
    assert (await service.client.post("/v1/bounces/generic", content=b"{", headers=auth)).status_code == 400

    [hygiene] = await read_topic(
        kafka_bootstrap, topics.CUSTOMERS, _of_type(CUSTOMER_UNSUBSCRIBED, customer_id=customer)
    )
    assert json.loads(hygiene.value)["data"]["reason"] == "hard_bounce"
    await read_topic(kafka_bootstrap, topics.SURVEY_EVENTS, _of_type(SURVEY_BOUNCED, customer_id=customer))
    later = await request_survey(kafka_bootstrap, tenant, customer=customer, email=address)
    await invitation_in(service, tenant, customer, later, "failed")
    assert len(mail_to(smtp_sink.directory, address)) == 1


async def test_a_soft_bounce_changes_nothing(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    """On an address that was emailed: a soft bounce (the server will try again) neither suppresses
    it nor marks the invitation bounced, so the next survey still reaches it."""
    service = await survey_service(start_service, bounce_webhook_token=BOUNCE_TOKEN)
    tenant = await provision_tenant(service.runtime)
    customer, address = f"c-{uuid.uuid4().hex}", unique_address()
    first = await request_survey(kafka_bootstrap, tenant, customer=customer, email=address)
    await email_to(smtp_sink.directory, address)
    soft = await service.client.post(
        "/v1/bounces/generic",
        json=[{"email": address, "type": "soft_bounce", "message_id": f"<{first}@nps.localhost>"}],
        headers={"Authorization": f"Bearer {BOUNCE_TOKEN}"},
    )
    assert soft.json() == {
        "reports": 1,
        "hard_bounces": 0,
        "soft_bounces": 1,
        "complaints": 0,
        "invitations_matched": 0,
    }
    await invitation_in(service, tenant, customer, first, "sent")
    later = await request_survey(kafka_bootstrap, tenant, customer=customer, email=address)
    await invitation_in(service, tenant, customer, later, "sent")
    assert len(mail_to(smtp_sink.directory, address)) == 2


async def test_one_reminder_to_people_who_did_not_answer_and_never_after_an_answer(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    service = await survey_service(start_service, lifecycle_poll_seconds=0.2)
    tenant = await provision_tenant(service.runtime)
    settings = await service.client.put(
        "/v1/survey-settings", json={"reminder_after_days": 3}, headers=tenant.headers
    )
    assert settings.status_code == 200
    quiet, answering = f"c-{uuid.uuid4().hex}", f"c-{uuid.uuid4().hex}"
    quiet_address, answering_address = unique_address(), unique_address()
    quiet_id = await request_survey(kafka_bootstrap, tenant, customer=quiet, email=quiet_address)
    answering_id = await request_survey(kafka_bootstrap, tenant, customer=answering, email=answering_address)
    await email_to(smtp_sink.directory, quiet_address)
    await email_to(smtp_sink.directory, answering_address)
    # Recorded as sent: recording sets the reminder's time, which would undo the change below.
    await invitation_in(service, tenant, quiet, quiet_id, "sent")
    answered = await service.client.post(f"/s/{survey_token(SECRET, answering_id)}", data={"score": "9"})
    assert answered.status_code == 200
    # Three days pass.
    async with service.runtime.database.uow() as uow:
        await uow.session.execute(
            text(
                "UPDATE survey.invitations SET reminder_due_at = now() - interval '1 minute' "
                "WHERE id = ANY(:ids)"
            ),
            {"ids": [quiet_id, answering_id]},
        )
        await uow.commit()

    async def reminded() -> list[object]:
        return [m for m in mail_to(smtp_sink.directory, quiet_address) if "Reminder" in str(m["Subject"])]

    [reminder] = await eventually(reminded)
    assert reminder["Message-ID"] == f"<{quiet_id}.r@nps.localhost>"
    await read_topic(kafka_bootstrap, topics.SURVEY_EVENTS, _of_type(SURVEY_REMINDED, customer_id=quiet))
    await eventually(lambda: _stamped(service, quiet_id, "reminded_at"))
    # One reminder only, and none to the person who answered.
    assert len(mail_to(smtp_sink.directory, quiet_address)) == 2
    assert len(mail_to(smtp_sink.directory, answering_address)) == 1


async def _stamped(service: object, invitation_id: uuid.UUID, column: str) -> bool:
    async with service.runtime.database.uow() as uow:  # type: ignore[attr-defined]
        value = await uow.session.scalar(
            text(f"SELECT {column} FROM survey.invitations WHERE id = :id"), {"id": invitation_id}
        )
    return value is not None


async def test_opens_and_clicks_are_counted_once_and_record_no_score(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    service, tenant, customer, _, invitation_id = await asked_once(start_service, kafka_bootstrap)
    await invitation_in(service, tenant, customer, invitation_id, "sent")
    token = survey_token(SECRET, invitation_id)
    for _ in range(2):
        pixel = await service.client.get(f"/o/{token}.gif")
        assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
        assert (await service.client.get(f"/s/{token}/7")).status_code == 200
    opened = await read_topic(
        kafka_bootstrap, topics.SURVEY_EVENTS, _of_type(SURVEY_OPENED, customer_id=customer), within=10
    )
    assert len(opened) == 1
    assert await _stamped(service, invitation_id, "clicked_at")
    [still] = await invitations(service, tenant, customer)
    assert still["status"] == "sent" and still["responded_at"] is None
    # An unknown token gets the same image and changes nothing.
    assert (await service.client.get("/o/" + "A" * 43 + ".gif")).status_code == 200


async def test_tenant_settings_shape_the_email_and_bad_ones_are_refused(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    service = await survey_service(start_service)
    tenant = await provision_tenant(service.runtime)
    bad = await service.client.put(
        "/v1/survey-settings", json={"brand_colour": "red", "logo_url": "http://x"}, headers=tenant.headers
    )
    assert bad.status_code == 422
    assert {"brand_colour", "logo_url"} <= {e["field"].split(".")[-1] for e in bad.json()["problems"]}
    assert (
        await service.client.put(
            "/v1/survey-settings", json={"default_language": "xx"}, headers=tenant.headers
        )
    ).status_code == 422
    assert (await service.client.put("/v1/survey-settings", json={})).status_code == 401
    good = await service.client.put(
        "/v1/survey-settings",
        json={"sender_name": "Acme Kundeservice", "reply_to": "cx@acme.example", "default_language": "en"},
        headers=tenant.headers,
    )
    assert good.status_code == 200
    touchpoint = await service.client.put(
        "/v1/survey-settings/touchpoints/webshop-purchase",
        json={"label": {"en": "your recent order"}, "ask_csat": True},
        headers=tenant.headers,
    )
    assert touchpoint.status_code == 200
    address = unique_address()
    await request_survey(kafka_bootstrap, tenant, customer=f"c-{uuid.uuid4().hex}", email=address)
    message = await email_to(smtp_sink.directory, address)
    assert str(message["From"]).startswith("Acme Kundeservice <")
    assert message["Reply-To"] == "cx@acme.example"
    body = message.get_body(("plain",))
    assert body is not None
    assert "Thinking of your recent order, how likely are you to recommend" in body.get_content()
    fetched = await service.client.get(
        "/v1/survey-settings/touchpoints/webshop-purchase", headers=tenant.headers
    )
    assert fetched.json()["ask_csat"] is True


async def test_the_email_is_in_the_customers_language(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    service = await survey_service(start_service)
    tenant = await provision_tenant(service.runtime)
    for locale, language in (("da-DK", "da"), ("sv_SE", "sv"), ("no", "nb"), ("de", "de"), ("fi-FI", "fi")):
        address = unique_address()
        customer = f"c-{uuid.uuid4().hex}"
        invitation_id = await request_survey(
            kafka_bootstrap, tenant, customer=customer, email=address, locale=locale
        )
        message = await email_to(smtp_sink.directory, address)
        assert message["Content-Language"] == language
        body = message.get_body(("plain",))
        assert body is not None and "How likely are you" not in body.get_content()
        shown = await service.client.get(f"/s/{survey_token(SECRET, invitation_id)}/8")
        assert f'<html lang="{language}">' in shown.text
        assert "How likely are you" not in shown.text
    # Unknown locale and no tenant default: English.
    address = unique_address()
    await request_survey(
        kafka_bootstrap, tenant, customer=f"c-{uuid.uuid4().hex}", email=address, locale="pt-BR"
    )
    assert (await email_to(smtp_sink.directory, address))["Content-Language"] == "en"


async def test_a_mail_scanner_following_every_link_records_nothing(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    """Security gateways fetch (and HEAD) every link in an email before a person sees it."""
    service, tenant, customer, address, invitation_id = await asked_once(start_service, kafka_bootstrap)
    message = await email_to(smtp_sink.directory, address)
    links = every_link(message)
    assert len(links) == 14  # 11 scores, the visible unsubscribe link, the pixel, the header
    for link in links:
        path = link.removeprefix(PUBLIC_URL)
        assert (await service.client.head(path)).status_code in (200, 405)
        assert (await service.client.get(path)).status_code == 200
    [seen] = await invitations(service, tenant, customer)
    assert seen["status"] == "sent" and seen["responded_at"] is None
    async with service.runtime.database.uow() as uow:
        unsubscribed = await uow.session.scalar(
            text("SELECT unsubscribed_at FROM survey.invitations WHERE id = :id"), {"id": invitation_id}
        )
    assert unsubscribed is None
    # The person can still answer, and unsubscribe, afterwards.
    token = survey_token(SECRET, invitation_id)
    assert (await service.client.post(f"/s/{token}", data={"score": "6"})).status_code == 200
