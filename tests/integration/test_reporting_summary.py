"""Reporting against the real broker and database: survey and follow-up events in on Kafka, the
tenant's summary out over HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from libs.common import topics
from libs.common.events import (
    FOLLOWUP_OPENED,
    FOLLOWUP_UPDATED,
    SURVEY_FAILED,
    SURVEY_RESPONDED,
    SURVEY_SENT,
    CaseStatus,
    Contract,
    Event,
    FailureReason,
    FollowupOpened,
    FollowupUpdated,
    SurveyFailed,
    SurveyResponded,
    SurveySent,
    new_event,
)
from services.reporting.config import ReportingSettings
from services.reporting.main import build
from tests.conftest import ServiceUnderTest, StartService, TestTenant, eventually, produce, provision_tenant

pytestmark = pytest.mark.integration

NO_CASES = {"open": 0, "breached": 0, "resolved": 0}
NO_FUNNEL = dict.fromkeys(
    (
        "sent",
        "opened",
        "machine_opened",
        "clicked",
        "responded",
        "reminded",
        "bounced",
        "unsubscribed",
        "expired",
        "failed",
    ),
    0,
)
NO_FOLLOW_UP_ANSWERS = {
    "recommended_share": None,
    "recommended_answers": 0,
    "average_csat": None,
    "csat_answers": 0,
    "average_effort": None,
    "effort_answers": 0,
}


class Customer:
    """One customer's events, all keyed by the customer so they stay in order on their topic."""

    def __init__(self, bootstrap: str, tenant: TestTenant, touchpoint: str) -> None:
        self.bootstrap = bootstrap
        self.tenant = tenant
        self.touchpoint = touchpoint
        self.customer_id = f"customer-{uuid.uuid4().hex[:8]}"

    async def _send(self, event_type: str, topic: str, data: Contract) -> None:
        event: Event[Contract] = new_event(
            event_type, tenant_id=self.tenant.tenant_id, data=data, subject=self.customer_id, source="/tests"
        )
        await produce(self.bootstrap, topic, event.envelope.to_json(), key=self.customer_id.encode())

    async def sent(self, invitation_id: uuid.UUID) -> None:
        data = SurveySent(
            invitation_id=invitation_id,
            customer_id=self.customer_id,
            touchpoint=self.touchpoint,
            sent_at=datetime.now(UTC),
        )
        await self._send(SURVEY_SENT, topics.SURVEY_EVENTS, data)

    async def responded(self, invitation_id: uuid.UUID, response_id: uuid.UUID, score: int) -> None:
        data = SurveyResponded(
            response_id=response_id,
            invitation_id=invitation_id,
            customer_id=self.customer_id,
            email=f"{self.customer_id}@shop.example",
            touchpoint=self.touchpoint,
            score=score,
            responded_at=datetime.now(UTC),
        )
        await self._send(SURVEY_RESPONDED, topics.SURVEY_EVENTS, data)

    async def failed(self, invitation_id: uuid.UUID, reason: FailureReason) -> None:
        data = SurveyFailed(
            invitation_id=invitation_id,
            customer_id=self.customer_id,
            touchpoint=self.touchpoint,
            at=datetime.now(UTC),
            reason=reason,
        )
        await self._send(SURVEY_FAILED, topics.SURVEY_EVENTS, data)

    async def case_opened(self, case_id: uuid.UUID, opened_at: datetime) -> None:
        data = FollowupOpened(
            case_id=case_id,
            response_id=uuid.uuid4(),
            invitation_id=uuid.uuid4(),
            customer_id=self.customer_id,
            touchpoint=self.touchpoint,
            score=3,
            opened_at=opened_at,
            due_at=opened_at + timedelta(hours=48),
        )
        await self._send(FOLLOWUP_OPENED, topics.FOLLOWUPS, data)

    async def case_updated(
        self, case_id: uuid.UUID, status: CaseStatus, breached: bool, at: datetime
    ) -> None:
        data = FollowupUpdated(case_id=case_id, status=status, breached=breached, updated_at=at)
        await self._send(FOLLOWUP_UPDATED, topics.FOLLOWUPS, data)


async def summary_of(service: ServiceUnderTest, tenant: TestTenant, **params: str) -> dict[str, Any]:
    response = await service.client.get("/v1/reports/summary", headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_summary_adds_up_invitations_answers_and_cases_of_the_tenant_only(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    stranger = await provision_tenant(reporting.runtime)
    touchpoint = f"checkout-{uuid.uuid4().hex[:8]}"
    customer = Customer(kafka_bootstrap, tenant, touchpoint)
    answered, unanswered, case_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    opened_at = datetime.now(UTC) - timedelta(hours=72)

    await customer.case_opened(case_id, opened_at)
    await customer.sent(answered)
    response_id = uuid.uuid4()
    # A promoter: a detractor's answer would also make the running alerting service open a real
    # case for this tenant, which reporting would rightly count as well.
    await customer.responded(answered, response_id, score=10)
    # A copy of the answer under a new event id is still the same answer. The second invitation
    # comes after it on the same partition: once that is counted, so is the copy.
    await customer.responded(answered, response_id, score=10)
    await customer.failed(uuid.uuid4(), "recipient_refused")
    await customer.sent(unanswered)
    await customer.case_updated(case_id, "open", True, opened_at + timedelta(hours=48))

    expected_counts = {
        "nps": 100.0,
        "responses": 1,
        "promoters": 1,
        "passives": 0,
        "detractors": 0,
        "invitations_sent": 2,
        "response_rate": 0.5,
        "cases": {"open": 1, "breached": 1, "resolved": 0},
        "funnel": {**NO_FUNNEL, "sent": 2, "responded": 1, "failed": 1},
        "failed_by_reason": {"recipient_refused": 1},
        **NO_FOLLOW_UP_ANSWERS,
    }

    async def complete() -> dict[str, Any] | None:
        body = await summary_of(reporting, tenant)
        return body if body["invitations_sent"] == 2 and body["cases"]["breached"] == 1 else None

    body = await eventually(complete)
    assert body == {**expected_counts, "by_touchpoint": [{"touchpoint": touchpoint, **expected_counts}]}
    assert (await summary_of(reporting, tenant, touchpoint=touchpoint))["response_rate"] == 0.5
    assert (await summary_of(reporting, tenant, touchpoint="elsewhere"))["invitations_sent"] == 0
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    later = await summary_of(reporting, tenant, since=tomorrow)
    assert (later["invitations_sent"], later["responses"], later["cases"]) == (0, 0, NO_CASES)

    assert await summary_of(reporting, stranger) == {
        "nps": None,
        "responses": 0,
        "promoters": 0,
        "passives": 0,
        "detractors": 0,
        "invitations_sent": 0,
        "response_rate": None,
        "cases": NO_CASES,
        "funnel": NO_FUNNEL,
        "failed_by_reason": {},
        **NO_FOLLOW_UP_ANSWERS,
        "by_touchpoint": [],
    }
    assert (await reporting.client.get("/v1/reports/summary")).status_code == 401
    bad_since = await reporting.client.get(
        "/v1/reports/summary", headers=tenant.headers, params={"since": "last week"}
    )
    assert bad_since.status_code == 422

    page = await reporting.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    # The page's script is a file of its own now, the only one its CSP lets run.
    assert "script-src 'self';" in page.headers["content-security-policy"]
    assert tenant.api_key not in page.text
    script = (await reporting.client.get("/assets/report.js")).text
    assert "sessionStorage" in script
    assert "Authorization" in script
    assert "/v1/reports/summary" in script


async def test_case_events_out_of_order_end_consistent(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    touchpoint = f"support-{uuid.uuid4().hex[:8]}"
    customer = Customer(kafka_bootstrap, tenant, touchpoint)
    resolved_case, newer_case = uuid.uuid4(), uuid.uuid4()
    opened_at = datetime.now(UTC) - timedelta(hours=3)

    # The case's resolution reaches reporting before its opening does.
    await customer.case_updated(resolved_case, "resolved", True, opened_at + timedelta(hours=2))

    async def resolution_seen() -> dict[str, Any] | None:
        body = await summary_of(reporting, tenant)
        return body if body["cases"]["resolved"] == 1 else None

    body = await eventually(resolution_seen)
    # Until the opening arrives nobody knows the touchpoint: the case counts in the totals only.
    assert body["cases"] == {"open": 0, "breached": 0, "resolved": 1}
    assert body["by_touchpoint"] == []

    # Then the opening, an older update, and a second case: in this order on one partition.
    await customer.case_opened(resolved_case, opened_at)
    await customer.case_updated(resolved_case, "contacted", True, opened_at + timedelta(hours=1))
    await customer.case_opened(newer_case, opened_at + timedelta(minutes=5))

    async def both_cases_placed() -> dict[str, Any] | None:
        body = await summary_of(reporting, tenant, touchpoint=touchpoint)
        cases = body["cases"]
        return body if cases["open"] + cases["resolved"] >= 2 else None

    body = await eventually(both_cases_placed)
    assert body["cases"] == {"open": 1, "breached": 0, "resolved": 1}
    assert (await summary_of(reporting, tenant))["cases"] == {"open": 1, "breached": 0, "resolved": 1}


async def test_a_summary_reads_one_moment_even_while_a_batch_lands(start_service: StartService) -> None:
    """A summary takes several queries; a batch committed between two of them once showed its
    funnel steps without its sends. Its transaction reads one snapshot."""
    from sqlalchemy import func, select

    from services.reporting.models import InvitationSent

    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    tenant_id = uuid.UUID(tenant.tenant_id)
    count = select(func.count()).where(InvitationSent.tenant_id == tenant_id)
    async with reporting.runtime.database.uow() as reading:
        await reading.repository.read_one_snapshot()
        assert await reading.session.scalar(count) == 0
        async with reporting.runtime.database.uow() as landing:
            await landing.repository.record_invitations(
                [
                    InvitationSent(
                        tenant_id=tenant_id,
                        invitation_id=uuid.uuid4(),
                        touchpoint="checkout",
                        sent_at=datetime.now(UTC),
                    )
                ],
            )
            await landing.commit()
        assert await reading.session.scalar(count) == 0
    async with reporting.runtime.database.uow() as after:
        assert await after.session.scalar(count) == 1
