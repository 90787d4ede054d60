"""Consent across the trigger and the survey, as a customer and a webshop see it: a re-subscribe
makes the next survey arrive again, and a refund or an unsubscribe after the email went out stops
its reminder."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from libs.common.events import CUSTOMER_RESUBSCRIBED, CUSTOMER_UNSUBSCRIBED, ORDER_CANCELLED
from services.survey.config import SurveySettings
from services.survey.domain.tokens import survey_token
from services.survey.main import build as build_survey
from services.trigger.config import TriggerSettings
from services.trigger.main import build as build_trigger
from tests.conftest import Mailbox, ServiceUnderTest, StartService, TestTenant, eventually, provision_tenant
from tests.integration.test_survey_flow import SECRET, mail_to, unique_address
from tests.support.factories import purchase
from tests.support.services import decisions


async def _services(start_service: StartService, **survey: Any) -> tuple[ServiceUnderTest, ServiceUnderTest]:
    trigger = await start_service(build_trigger, TriggerSettings)
    survey_service = await start_service(
        build_survey,
        SurveySettings,
        survey_token_secret=SECRET,
        survey_public_url="http://testserver",
        send_poll_seconds=0.05,
        **survey,
    )
    return trigger, survey_service


def _event(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"specversion": "1.0", "id": uuid.uuid4().hex, "source": "/crm", "type": event_type, "data": data}


async def _post(
    trigger: ServiceUnderTest, tenant: TestTenant, *events: dict[str, Any]
) -> list[dict[str, Any]]:
    response = await trigger.client.post("/v1/events", json=list(events), headers=tenant.headers)
    assert response.status_code == 202, response.text
    return response.json()["results"]  # type: ignore[no-any-return]


async def _emails(mailbox: Mailbox, address: str, count: int) -> list[Any]:
    async def arrived() -> list[Any] | None:
        found = mail_to(mailbox.directory, address)
        return found if len(found) >= count else None

    found: list[Any] = await eventually(arrived, within=30)
    return found


async def test_after_a_resubscribe_the_next_survey_is_emailed_again(
    start_service: StartService, smtp_sink: Mailbox
) -> None:
    trigger, survey = await _services(start_service)
    tenant = await provision_tenant(trigger.runtime, survey.runtime)
    # Every purchase may be surveyed, so that only consent decides.
    assert (
        await trigger.client.put("/v1/policy", json={"rest_period_days": 0}, headers=tenant.headers)
    ).is_success
    customer, address = f"c-{uuid.uuid4().hex[:10]}", unique_address()
    [first] = await _post(trigger, tenant, purchase(customer, email=address))
    await _emails(smtp_sink, address, 1)

    # The customer unsubscribes from the email; the survey tells the trigger.
    token = survey_token(SECRET, uuid.UUID(first["invitation_id"]))
    assert (await survey.client.post(f"/u/{token}")).status_code == 200

    async def trigger_knows() -> bool:
        return any(d["reason"] == "unsubscribed" for d in await decisions(trigger, tenant, customer))

    await eventually(trigger_knows)
    [refused] = await _post(trigger, tenant, purchase(customer, email=address))
    assert refused["reason"] == "unsubscribed"

    [resubscribed] = await _post(trigger, tenant, _event(CUSTOMER_RESUBSCRIBED, {"customer_id": customer}))
    assert resubscribed["decision"] == "recorded"
    [again] = await _post(trigger, tenant, purchase(customer, email=address))
    assert again["decision"] == "invited"
    # Before, the survey kept the address suppressed and refused to send what the trigger decided.
    await _emails(smtp_sink, address, 2)


async def test_a_refund_or_an_unsubscribe_after_sending_stops_the_reminder(
    start_service: StartService, smtp_sink: Mailbox
) -> None:
    trigger, survey = await _services(start_service, lifecycle_poll_seconds=0.2)
    tenant = await provision_tenant(trigger.runtime, survey.runtime)
    settings = await survey.client.put(
        "/v1/survey-settings", json={"reminder_after_days": 3}, headers=tenant.headers
    )
    assert settings.status_code == 200
    refunded, leaving, control = (f"c-{uuid.uuid4().hex[:10]}" for _ in range(3))
    addresses = {customer: unique_address() for customer in (refunded, leaving, control)}
    orders = {customer: uuid.uuid4().hex for customer in addresses}
    results = await _post(
        trigger,
        tenant,
        *(purchase(c, email=addresses[c], order_id=orders[c]) for c in (refunded, leaving, control)),
    )
    invitation_ids = [uuid.UUID(r["invitation_id"]) for r in results]
    for address in addresses.values():
        await _emails(smtp_sink, address, 1)

    await _post(
        trigger,
        tenant,
        _event(
            ORDER_CANCELLED, {"order_id": orders[refunded], "customer_id": refunded, "reason": "refunded"}
        ),
        _event(CUSTOMER_UNSUBSCRIBED, {"customer_id": leaving, "reason": "unsubscribed"}),
    )

    async def withdrawn() -> bool:
        """Two withdrawn, and all three recorded as sent (recording sets the reminder's time,
        which would undo the change below)."""
        async with survey.runtime.database.sessions() as session:
            counts = (
                await session.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE withdrawn_at IS NOT NULL), "
                        "count(*) FILTER (WHERE sent_at IS NOT NULL) "
                        "FROM survey.invitations WHERE id = ANY(:ids)"
                    ),
                    {"ids": invitation_ids},
                )
            ).one()
        return tuple(counts) == (2, 3)

    await eventually(withdrawn)
    # Three days pass.
    async with survey.runtime.database.sessions() as session, session.begin():
        await session.execute(
            text(
                "UPDATE survey.invitations SET reminder_due_at = now() - interval '1 minute' "
                "WHERE id = ANY(:ids)"
            ),
            {"ids": invitation_ids},
        )

    [_, reminder] = await _emails(smtp_sink, addresses[control], 2)
    assert "Reminder" in str(reminder["Subject"])
    # The same pass that reminded the control customer passed over the other two.
    assert len(mail_to(smtp_sink.directory, addresses[refunded])) == 1
    assert len(mail_to(smtp_sink.directory, addresses[leaving])) == 1
