"""A tenant's retention, set on the trigger and enforced by each service's retention job against
the real broker and database: a comment older than the tenant's months loses its text in the
survey, reporting and alerting while its score still counts; a newer one, and another tenant's,
keep theirs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from libs.common import topics
from libs.common.events import SURVEY_RESPONDED, SurveyResponded
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
    request_survey,
    survey_service,
    unique_address,
)

#: The job looks often here; its default is hourly (retention is counted in months).
POLL = {"retention_poll_seconds": 0.2}


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
    alerting = await start_service(build_alerting, AlertingSettings, **POLL)
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
