"""A tenant's retention, set on the trigger and enforced by each service's retention job against
the real broker and database: a comment older than the tenant's months loses its text in the
survey, reporting and alerting while its score still counts, and alerting's sent emails quoting it
lose their text; an invitation past the tenant's months forgets whom it went to once its link has
expired, and still counts. A newer one, and another tenant's, keep theirs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import text

from libs.common import topics
from libs.common.events import (
    SURVEY_REQUESTED,
    SURVEY_RESPONDED,
    SurveyContext,
    SurveyRequested,
    SurveyResponded,
)
from services.alerting.config import AlertingSettings
from services.alerting.main import build as build_alerting
from services.reporting.config import ReportingSettings
from services.reporting.main import build as build_reporting
from services.survey.domain.tokens import survey_token
from services.trigger.config import TriggerSettings
from services.trigger.main import build as build_trigger
from tests.conftest import (
    Mailbox,
    ServiceUnderTest,
    StartService,
    TestTenant,
    eventually,
    metric_value,
    provision_tenant,
)
from tests.integration.test_reporting_verbatims import publish
from tests.integration.test_survey_flow import (
    SECRET,
    email_to,
    invitation_in,
    request_survey,
    survey_service,
    unique_address,
)

#: The job looks often here; its default is hourly (retention is counted in months).
POLL = {"retention_poll_seconds": 0.2}
#: Alerting as the webhook tests run it (tests/integration/test_webhook_deliveries.py), with the
#: job's poll: this service shares their database, so its webhook sender claims their deliveries
#: too, and one refusing their local receivers would fail them.
ALERTING = {
    "sla_check_seconds": 3600,
    "notify_poll_seconds": 0.1,
    "notify_delay_seconds": 0,
    "outbound_allow_private": True,
    **POLL,
}


async def _part(service: ServiceUnderTest, tenant: TestTenant, customer: str) -> dict[str, Any]:
    response = await service.client.get(f"/v1/customers/{customer}/data", headers=tenant.headers)
    assert response.status_code == 200
    sections: dict[str, Any] = response.json()["sections"]
    return sections


async def _answered_in_survey(
    survey: ServiceUnderTest, kafka_bootstrap: str, smtp_sink: Mailbox, tenant: TestTenant, comment: str
) -> tuple[str, uuid.UUID]:
    customer, address = f"c-{uuid.uuid4().hex[:8]}", unique_address()
    invitation = await request_survey(kafka_bootstrap, tenant, customer=customer, email=address)
    await email_to(smtp_sink.directory, address)
    token = survey_token(SECRET, invitation)
    assert (
        await survey.client.post(f"/s/{token}", data={"score": "3", "comment": comment})
    ).status_code == 200
    return customer, invitation


def _answer(customer: str, comment: str, at: datetime) -> SurveyResponded:
    return SurveyResponded(
        response_id=uuid.uuid4(),
        invitation_id=uuid.uuid4(),
        customer_id=customer,
        email=f"{customer}@shop.example",
        touchpoint="purchase",
        score=3,
        comment=comment,
        responded_at=at,
    )


async def test_comments_past_a_tenants_retention_lose_their_text_and_keep_their_score(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    trigger = await start_service(build_trigger, TriggerSettings)
    survey = await survey_service(start_service, **POLL)
    alerting = await start_service(build_alerting, AlertingSettings, **ALERTING)
    reporting = await start_service(build_reporting, ReportingSettings, **POLL)
    runtimes = (survey.runtime, alerting.runtime, reporting.runtime)
    keeping = await provision_tenant(trigger.runtime, *runtimes)
    forgetting = await provision_tenant(trigger.runtime, *runtimes)

    # A new tenant keeps everything; bad settings are refused, naming the field.
    kept = await trigger.client.get("/v1/privacy/retention", headers=forgetting.headers)
    assert kept.json() == {"comments_months": None, "invitations_months": None}
    for bad in (
        {"comments_months": 0, "invitations_months": None},
        {"comments_months": 121, "invitations_months": None},
        {"comments_months": "soon", "invitations_months": 3},
        {"comments_months": 1, "invitations_months": None, "answers_months": 2},
    ):
        refused = await trigger.client.put("/v1/privacy/retention", json=bad, headers=forgetting.headers)
        assert refused.status_code == 422, bad
    chosen = {"comments_months": 1, "invitations_months": None}
    put = await trigger.client.put("/v1/privacy/retention", json=chosen, headers=forgetting.headers)
    assert put.status_code == 200 and put.json() == chosen
    assert (await trigger.client.get("/v1/privacy/retention", headers=forgetting.headers)).json() == chosen

    # In the survey: answers through the survey pages, the old ones recorded two months ago.
    tag = uuid.uuid4().hex[:6]
    answers: dict[tuple[str, str], str] = {}
    for tenant in (keeping, forgetting):
        for age in ("old", "new"):
            customer, invitation = await _answered_in_survey(
                survey, kafka_bootstrap, smtp_sink, tenant, f"{age} words {tag}"
            )
            answers[(tenant.tenant_id, age)] = customer
            if age == "old":
                async with survey.runtime.database.uow() as uow:
                    await uow.session.execute(
                        text(
                            "UPDATE survey.responses SET responded_at = now() - interval '60 days' "
                            "WHERE invitation_id = :id"
                        ),
                        {"id": invitation},
                    )
                    await uow.commit()
    # In reporting and alerting: the answers as the survey announces them.
    now = datetime.now(UTC)
    copies: dict[tuple[str, str], str] = {}
    events = []
    for tenant in (keeping, forgetting):
        for age, at in (("old", now - timedelta(days=60)), ("new", now - timedelta(days=1))):
            customer = f"r-{age}-{uuid.uuid4().hex[:8]}"
            copies[(tenant.tenant_id, age)] = customer
            events.append(
                (SURVEY_RESPONDED, topics.SURVEY_EVENTS, tenant, _answer(customer, f"{age} {tag}", at))
            )
    await publish(kafka_bootstrap, events)

    def cleared(sections: dict[str, Any], name: str) -> bool:
        return bool(sections[name]["items"]) and all(
            item["comment"] is None for item in sections[name]["items"]
        )

    async def survey_cleared() -> bool:
        sections = await _part(survey, forgetting, answers[(forgetting.tenant_id, "old")])
        return not sections["comments"]["items"] and sections["answers"]["items"][0]["score"] == 3

    async def reporting_cleared() -> bool:
        return cleared(await _part(reporting, forgetting, copies[(forgetting.tenant_id, "old")]), "responses")

    async def alerting_cleared() -> bool:
        sections = await _part(alerting, forgetting, copies[(forgetting.tenant_id, "old")])
        return cleared(sections, "cases") and cleared(sections, "answers")

    await eventually(survey_cleared, within=30)
    await eventually(reporting_cleared, within=30)
    await eventually(alerting_cleared, within=30)

    # Its score still counts; the newer answer, and every answer of the tenant keeping them, keep
    # their comments.
    old_copy = (await _part(reporting, forgetting, copies[(forgetting.tenant_id, "old")]))["responses"]
    assert old_copy["items"][0]["score"] == 3
    [old_case] = (await _part(alerting, forgetting, copies[(forgetting.tenant_id, "old")]))["cases"]["items"]
    assert old_case["score"] == 3 and old_case["status"] == "open"
    for tenant, age in ((forgetting, "new"), (keeping, "old"), (keeping, "new")):
        said = (await _part(survey, tenant, answers[(tenant.tenant_id, age)]))["comments"]["items"]
        assert [item["comment"] for item in said] == [f"{age} words {tag}"]
        copy = copies[(tenant.tenant_id, age)]

        async def projected(copy: str = copy, tenant: TestTenant = tenant) -> Any:
            rows = (await _part(reporting, tenant, copy))["responses"]["items"]
            cases = (await _part(alerting, tenant, copy))["cases"]["items"]
            return (rows, cases) if rows and cases else None

        rows, cases = await eventually(projected, within=30)
        assert rows[0]["comment"] == f"{age} {tag}" and cases[0]["comment"] == f"{age} {tag}"

    # The job counts what it cleared.
    for service, name in ((survey, "survey"), (reporting, "reporting"), (alerting, "alerting")):
        assert await metric_value(service.client, f"nps_{name}_job_items_total", job="privacy-retention") >= 1


async def _invited(
    survey: ServiceUnderTest, kafka_bootstrap: str, smtp_sink: Mailbox, tenant: TestTenant
) -> tuple[str, uuid.UUID, str]:
    """A survey request with a name and a context, as the trigger sends it, emailed."""
    customer, address, invitation = f"i-{uuid.uuid4().hex[:8]}", unique_address(), uuid.uuid4()
    request = SurveyRequested(
        invitation_id=invitation,
        customer_id=customer,
        email=address,
        name="Jane Doe",
        touchpoint="webshop-purchase",
        trigger_event_id=f"order-{uuid.uuid4().hex[:8]}",
        trigger_event_type="purchase.completed.v1",
        send_at=datetime.now(UTC),
        context=SurveyContext(order_id="order-4711", attributes={"tier": "gold"}),
    )
    await publish(kafka_bootstrap, [(SURVEY_REQUESTED, topics.SURVEY_REQUESTS, tenant, request)])
    await email_to(smtp_sink.directory, address)
    await invitation_in(survey, tenant, customer, invitation, "sent")
    return customer, invitation, address


async def test_invitations_past_a_tenants_retention_forget_who_they_went_to_once_their_link_expired(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    trigger = await start_service(build_trigger, TriggerSettings)
    survey = await survey_service(start_service, **POLL)
    keeping = await provision_tenant(trigger.runtime, survey.runtime)
    forgetting = await provision_tenant(trigger.runtime, survey.runtime)
    chosen = {"comments_months": None, "invitations_months": 1}
    put = await trigger.client.put("/v1/privacy/retention", json=chosen, headers=forgetting.headers)
    assert put.status_code == 200 and put.json() == chosen

    # (tenant, days since it was sent, whether its link has expired)
    cases = {
        "old": (forgetting, 60, True),
        "newer": (forgetting, 10, True),
        "still_open": (forgetting, 60, False),
        "kept_by_tenant": (keeping, 60, True),
    }
    invited: dict[str, tuple[TestTenant, str, uuid.UUID, str]] = {}
    for label, (tenant, days, expired) in cases.items():
        customer, invitation, address = await _invited(survey, kafka_bootstrap, smtp_sink, tenant)
        invited[label] = (tenant, customer, invitation, address)
        async with survey.runtime.database.uow() as uow:
            await uow.session.execute(
                text(
                    "UPDATE survey.invitations SET created_at = now() - make_interval(days => :days), "
                    "expires_at = now() + make_interval(days => :expires) WHERE id = :id"
                ),
                {"id": invitation, "days": days, "expires": -1 if expired else 30},
            )
            await uow.commit()

    async def invitation_held(label: str) -> dict[str, Any]:
        tenant, customer, _, _ = invited[label]
        [item] = (await _part(survey, tenant, customer))["invitations"]["items"]
        held: dict[str, Any] = item
        return held

    async def forgotten() -> dict[str, Any] | None:
        item = await invitation_held("old")
        return item if item["email"] == "" else None

    old = await eventually(forgotten, within=30)
    assert old["name"] is None and old["context"] is None
    # It still counts: listed with its state, sent as it was, for the funnel and the report.
    tenant, customer, invitation, _ = invited["old"]
    listed = await invitation_in(survey, tenant, customer, invitation, old["status"])
    assert listed["sent_at"] is not None and listed["customer_id"] == customer
    # A newer invitation, one whose link is still open, and another tenant's keep who they went to.
    for label in ("newer", "still_open", "kept_by_tenant"):
        item = await invitation_held(label)
        assert item["email"] == invited[label][3], label
        assert item["name"] == "Jane Doe", label
        assert item["context"]["order_id"] == "order-4711", label
    assert await metric_value(survey.client, "nps_survey_job_items_total", job="privacy-retention") >= 1


async def _case_emails(alerting: ServiceUnderTest, tenant: TestTenant, customer: str) -> list[Any]:
    async with alerting.runtime.database.uow() as uow:
        rows = await uow.session.execute(
            text(
                "SELECT n.id, n.body, n.sent_at FROM alerting.notifications n "
                "JOIN alerting.followup_cases c ON c.id = n.case_id "
                "WHERE c.tenant_id = :tenant AND c.customer_id = :customer AND n.channel = 'email'"
            ),
            {"tenant": uuid.UUID(tenant.tenant_id), "customer": customer},
        )
        return list(rows)


async def test_the_sent_emails_quoting_a_comment_past_retention_lose_their_text(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    trigger = await start_service(build_trigger, TriggerSettings)
    alerting = await start_service(build_alerting, AlertingSettings, **ALERTING)
    keeping = await provision_tenant(trigger.runtime, alerting.runtime)
    forgetting = await provision_tenant(trigger.runtime, alerting.runtime)
    chosen = {"comments_months": 1, "invitations_months": None}
    put = await trigger.client.put("/v1/privacy/retention", json=chosen, headers=forgetting.headers)
    assert put.status_code == 200 and put.json() == chosen

    # A detractor's case emails its owner, quoting the comment. The emails are sent now; the old
    # ones are then dated two months back, as if sent then.
    tag = uuid.uuid4().hex[:6]
    now = datetime.now(UTC)
    customers = {
        label: (tenant, f"m-{label}-{uuid.uuid4().hex[:8]}")
        for label, tenant in (("old", forgetting), ("newer", forgetting), ("kept_by_tenant", keeping))
    }
    await publish(
        kafka_bootstrap,
        [
            (SURVEY_RESPONDED, topics.SURVEY_EVENTS, tenant, _answer(customer, f"{label} {tag}", now))
            for label, (tenant, customer) in customers.items()
        ],
    )

    async def sent(label: str) -> list[Any] | None:
        tenant, customer = customers[label]
        emails = await _case_emails(alerting, tenant, customer)
        return emails if emails and all(row.sent_at is not None for row in emails) else None

    for label in customers:
        emails = await eventually(partial(sent, label), within=30)
        assert all(f"{label} {tag}" in row.body for row in emails), label
    async with alerting.runtime.database.uow() as uow:
        for label in ("old", "kept_by_tenant"):
            tenant, customer = customers[label]
            await uow.session.execute(
                text(
                    "UPDATE alerting.notifications SET created_at = now() - interval '60 days' "
                    "WHERE id = ANY(:ids)"
                ),
                {"ids": [row.id for row in await _case_emails(alerting, tenant, customer)]},
            )
        await uow.commit()

    async def emptied() -> list[Any] | None:
        tenant, customer = customers["old"]
        emails = await _case_emails(alerting, tenant, customer)
        return emails if all(row.body == "" for row in emails) else None

    old = await eventually(emptied, within=30)
    # The record of the email stays: it was sent.
    assert old and all(row.sent_at is not None for row in old)
    for label in ("newer", "kept_by_tenant"):
        tenant, customer = customers[label]
        emails = await _case_emails(alerting, tenant, customer)
        assert emails and all(f"{label} {tag}" in row.body for row in emails), label
