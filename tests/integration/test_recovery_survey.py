"""Did following up work? The recovery survey along the whole chain, on real Postgres, Kafka and
SMTP: a detractor's case is resolved; when its day comes alerting asks for the recovery survey, the
trigger decides and requests it, the survey emails it, and the customer's new score goes on the
case, without opening another one and without counting in the NPS. An unsubscribed customer is not
asked, and asking again asks nobody twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from libs.common.events import CUSTOMER_UNSUBSCRIBED
from services.alerting.handlers.recovery import request_recoveries
from services.survey.domain.tokens import survey_token
from services.trigger.domain.recovery import recovery_invitation_id
from tests.conftest import Mailbox, ServiceUnderTest, StartService, TestTenant, eventually
from tests.integration.test_alerting_followups import _alerting
from tests.integration.test_survey_flow import SECRET, email_to, invitation_in, mail_to, survey_service
from tests.support.factories import cloud_event, purchase
from tests.support.services import post_event, trigger_with_tenant


async def _answered_detractor(
    trigger: ServiceUnderTest,
    survey: ServiceUnderTest,
    alerting: ServiceUnderTest,
    tenant: TestTenant,
    smtp_sink: Mailbox,
) -> tuple[str, str, dict[str, Any]]:
    """A customer buys, is surveyed, answers 3; the case alerting opened for it."""
    customer, address = f"c-{uuid.uuid4().hex}", f"jane-{uuid.uuid4().hex[:12]}@example.com"
    bought = await post_event(trigger, tenant, purchase(customer, email=address))
    assert bought["decision"] == "invited", bought
    invitation = uuid.UUID(bought["invitation_id"])
    # The survey and alerting learn the tenant and its key from Kafka; the email shows it arrived.
    await email_to(smtp_sink.directory, address)
    await invitation_in(survey, tenant, customer, invitation, "sent")
    token = survey_token(SECRET, invitation)
    assert (await survey.client.post(f"/s/{token}", data={"score": "3"})).status_code == 200

    async def case() -> dict[str, Any] | None:
        listed = await alerting.client.get("/v1/cases", headers=tenant.headers)
        if listed.status_code != 200:  # alerting has not heard of the tenant's key yet
            return None
        found = [c for c in listed.json()["cases"] if c["customer_id"] == customer]
        return found[0] if found else None

    return customer, address, await eventually(case, within=30)


async def _resolve_and_come_due(alerting: ServiceUnderTest, tenant: TestTenant, case_id: str) -> None:
    resolved = await alerting.client.patch(
        f"/v1/cases/{case_id}",
        json={"status": "resolved", "note": "Called, sent a new pair."},
        headers=tenant.headers,
    )
    assert resolved.status_code == 200, resolved.text
    async with alerting.runtime.database.uow() as uow:
        due = await uow.session.scalar(
            text("SELECT recovery_due_at - resolved_at FROM alerting.followup_cases WHERE id = :id"),
            {"id": uuid.UUID(case_id)},
        )
        # A new tenant's default: 14 days after resolution. The test does not wait them out.
        assert due is not None and due.days == 14
        await uow.session.execute(
            text("UPDATE alerting.followup_cases SET recovery_due_at = now() WHERE id = :id"),
            {"id": uuid.UUID(case_id)},
        )
        await uow.commit()


async def _request(alerting: ServiceUnderTest) -> int:
    async with alerting.runtime.database.uow() as uow:
        requested = await request_recoveries(uow, datetime.now(UTC))
        await uow.commit()
    return requested


async def _recovery_of(alerting: ServiceUnderTest, case_id: str) -> Any:
    async with alerting.runtime.database.uow() as uow:
        return (
            await uow.session.execute(
                text(
                    "SELECT recovery_requested_at, recovery_score, "
                    "(SELECT array_agg(kind ORDER BY id) FROM alerting.case_events e "
                    "WHERE e.case_id = c.id) AS kinds "
                    "FROM alerting.followup_cases c WHERE id = :id"
                ),
                {"id": uuid.UUID(case_id)},
            )
        ).one()


async def test_a_resolved_detractor_is_asked_again_and_the_new_score_goes_on_the_case(
    start_service: StartService, smtp_sink: Mailbox
) -> None:
    survey = await survey_service(start_service)
    alerting = await _alerting(start_service)
    trigger, tenant = await trigger_with_tenant(start_service)
    customer, address, case = await _answered_detractor(trigger, survey, alerting, tenant, smtp_sink)
    await _resolve_and_come_due(alerting, tenant, case["id"])

    assert await _request(alerting) >= 1
    recovery = recovery_invitation_id(uuid.UUID(case["id"]))
    await invitation_in(survey, tenant, customer, recovery, "sent")
    assert len(mail_to(smtp_sink.directory, address)) == 2
    token = survey_token(SECRET, recovery)
    assert (await survey.client.post(f"/s/{token}", data={"score": "8"})).status_code == 200

    async def recovered() -> Any:
        row = await _recovery_of(alerting, case["id"])
        return row if row.recovery_score is not None else None

    row = await eventually(recovered, within=30)
    assert row.recovery_score == 8
    assert row.kinds[-2:] == ["recovery_requested", "recovery_answered"]
    # The recovery answer opened no case of its own.
    listed = await alerting.client.get("/v1/cases", headers=tenant.headers)
    assert [c["id"] for c in listed.json()["cases"] if c["customer_id"] == customer] == [case["id"]]
    # Asking again asks nobody twice.
    assert await _request(alerting) == 0
    decisions = await trigger.client.get(
        "/v1/decisions", params={"customer": customer}, headers=tenant.headers
    )
    recovery_decisions = [
        d for d in decisions.json()["decisions"] if d["event_type"] == "followup.recovery_due.v1"
    ]
    assert [(d["outcome"], d["reason"]) for d in recovery_decisions] == [("invited", "recovery")]


async def test_an_unsubscribed_customer_gets_no_recovery_survey(
    start_service: StartService, smtp_sink: Mailbox
) -> None:
    survey = await survey_service(start_service)
    alerting = await _alerting(start_service)
    trigger, tenant = await trigger_with_tenant(start_service)
    customer, address, case = await _answered_detractor(trigger, survey, alerting, tenant, smtp_sink)
    unsubscribed = cloud_event(CUSTOMER_UNSUBSCRIBED, {"customer_id": customer}, customer, source="/crm")
    assert (await post_event(trigger, tenant, unsubscribed))["decision"] in {"recorded", "cancelled"}
    await _resolve_and_come_due(alerting, tenant, case["id"])

    assert await _request(alerting) >= 1

    async def decided() -> list[dict[str, Any]] | None:
        response = await trigger.client.get(
            "/v1/decisions", params={"customer": customer}, headers=tenant.headers
        )
        found = [d for d in response.json()["decisions"] if d["event_type"] == "followup.recovery_due.v1"]
        return found or None

    [decision] = await eventually(decided, within=30)
    assert (decision["outcome"], decision["reason"]) == ("skipped", "unsubscribed")
    assert len(mail_to(smtp_sink.directory, address)) == 1
