"""Answers that change after they were given (``survey.response_updated``), through Kafka, as
scoring, alerting and reporting show them; and reporting's funnel of survey steps."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from libs.common import topics
from libs.common.events import (
    SURVEY_CLICKED,
    SURVEY_EXPIRED,
    SURVEY_OPENED,
    SURVEY_REMINDED,
    SURVEY_RESPONDED,
    SURVEY_RESPONSE_UPDATED,
    SURVEY_SENT,
    Contract,
    Event,
    SurveyResponded,
    SurveyResponseUpdated,
    SurveySent,
    SurveyStep,
    new_event,
)
from services.alerting.domain.sla import DEFAULT_POLICY, Priority, clock
from services.reporting.config import ReportingSettings
from services.reporting.main import build as build_reporting
from services.scoring.config import ScoringSettings
from services.scoring.main import build as build_scoring
from tests.conftest import (
    ServiceUnderTest,
    StartService,
    TestTenant,
    eventually,
    produce,
    provision_tenant,
    read_topic,
)
from tests.integration.test_alerting_followups import _alerting

pytestmark = pytest.mark.integration


async def _services(
    start_service: StartService,
) -> tuple[ServiceUnderTest, ServiceUnderTest, ServiceUnderTest]:
    scoring = await start_service(build_scoring, ScoringSettings)
    # The alerting tests' own helper, so the session shares one alerting service.
    alerting = await _alerting(start_service)
    reporting = await start_service(build_reporting, ReportingSettings)
    return scoring, alerting, reporting


class Respondent:
    """One customer answering one invitation; every event keyed by the customer, so in order."""

    def __init__(self, bootstrap: str, tenant: TestTenant, touchpoint: str, customer_id: str | None = None):
        self.bootstrap = bootstrap
        self.tenant = tenant
        self.touchpoint = touchpoint
        self.customer_id = customer_id or f"customer-{uuid.uuid4().hex[:8]}"
        self.invitation_id = uuid.uuid4()
        self.response_id = uuid.uuid4()
        self.responded_at = datetime.now(UTC) - timedelta(minutes=5)

    async def send(self, event: Event[Contract]) -> None:
        await produce(
            self.bootstrap,
            topics.SURVEY_EVENTS,
            event.envelope.to_json(),
            key=self.customer_id.encode(),
        )

    def _event(self, event_type: str, data: Contract) -> Event[Contract]:
        return new_event(
            event_type, tenant_id=self.tenant.tenant_id, data=data, subject=self.customer_id, source="/tests"
        )

    def responded(self, score: int) -> Event[Contract]:
        return self._event(
            SURVEY_RESPONDED,
            SurveyResponded(
                response_id=self.response_id,
                invitation_id=self.invitation_id,
                customer_id=self.customer_id,
                email=f"{self.customer_id}@shop.example",
                touchpoint=self.touchpoint,
                score=score,
                responded_at=self.responded_at,
            ),
        )

    def updated(self, revision: int, score: int, **answers: Any) -> Event[Contract]:
        return self._event(
            SURVEY_RESPONSE_UPDATED,
            SurveyResponseUpdated(
                response_id=self.response_id,
                invitation_id=self.invitation_id,
                customer_id=self.customer_id,
                touchpoint=self.touchpoint,
                revision=revision,
                score=score,
                responded_at=self.responded_at,
                updated_at=self.responded_at + timedelta(minutes=revision),
                **answers,
            ),
        )

    def sent(self) -> Event[Contract]:
        data = SurveySent(
            invitation_id=self.invitation_id,
            customer_id=self.customer_id,
            touchpoint=self.touchpoint,
            sent_at=self.responded_at - timedelta(hours=1),
        )
        return self._event(SURVEY_SENT, data)

    def step(self, event_type: str) -> Event[Contract]:
        data = SurveyStep(
            invitation_id=self.invitation_id,
            customer_id=self.customer_id,
            touchpoint=self.touchpoint,
            at=self.responded_at - timedelta(minutes=30),
        )
        return self._event(event_type, data)


async def _get(service: ServiceUnderTest, path: str, tenant: TestTenant, key: str) -> Any:
    response = await service.client.get(path, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()[key] if key else response.json()


async def _nps(scoring: ServiceUnderTest, tenant: TestTenant) -> dict[str, Any]:
    body: dict[str, Any] = await _get(scoring, "/v1/nps", tenant, "")
    return body


async def _cases(alerting: ServiceUnderTest, tenant: TestTenant) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = await _get(alerting, "/v1/cases", tenant, "cases")
    return cases


async def _summary(reporting: ServiceUnderTest, tenant: TestTenant) -> dict[str, Any]:
    body: dict[str, Any] = await _get(reporting, "/v1/reports/summary", tenant, "")
    return body


async def _responses(reporting: ServiceUnderTest, tenant: TestTenant) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = await _get(reporting, "/v1/reports/responses", tenant, "responses")
    return answers


async def _scored(scoring: ServiceUnderTest, tenant: TestTenant, responses: int) -> dict[str, Any] | None:
    body = await _nps(scoring, tenant)
    return body if body["responses"] == responses else None


def _categories(body: dict[str, Any]) -> tuple[int, int, int, int]:
    return body["responses"], body["promoters"], body["passives"], body["detractors"]


async def test_a_corrected_misclick_turns_the_detractor_into_a_promoter_everywhere(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    scoring, alerting, reporting = await _services(start_service)
    tenant = await provision_tenant(scoring.runtime, alerting.runtime, reporting.runtime)
    touchpoint = f"checkout-{uuid.uuid4().hex[:8]}"
    answer = Respondent(kafka_bootstrap, tenant, touchpoint)

    await answer.send(answer.responded(3))
    assert (await eventually(lambda: _scored(scoring, tenant, 1)))["nps"] == -100.0
    (case,) = await eventually(lambda: _cases(alerting, tenant), within=30)
    assert (case["status"], case["score"]) == ("open", 3)

    correction = answer.updated(2, 9, comment="Sorry, I meant 9!", recommended=True, csat=5, effort=2)
    await answer.send(correction)

    async def promoted() -> dict[str, Any] | None:
        body = await _nps(scoring, tenant)
        return body if body["promoters"] == 1 else None

    body = await eventually(promoted)
    assert _categories(body) == (1, 1, 0, 0)
    assert body["nps"] == 100.0

    async def resolved() -> dict[str, Any] | None:
        (current,) = await _cases(alerting, tenant)
        return current if current["status"] == "resolved" else None

    case = await eventually(resolved)
    assert case["resolution"] == "score_changed"
    assert case["score"] == 9
    assert case["comment"] == "Sorry, I meant 9!"
    assert (case["recommended"], case["csat"], case["effort"]) == (True, 5, 2)
    assert "from 3 to 9" in case["note"]
    assert case["resolved_at"] is not None

    def case_resolved(record: Any) -> bool:
        event = json.loads(record.value)
        return bool(
            event["type"] == "followup.updated.v1"
            and event["data"]["case_id"] == case["id"]
            and event["data"]["status"] == "resolved"
        )

    await read_topic(kafka_bootstrap, topics.FOLLOWUPS, case_resolved)

    def score_is_100(record: Any) -> bool:
        event = json.loads(record.value)
        return bool(
            event["tenantid"] == tenant.tenant_id
            and event["data"]["nps"] == 100.0
            and event["data"]["window"]["bucket"] == "all"
        )

    (announced,) = await read_topic(kafka_bootstrap, topics.SCORES, score_is_100)
    assert json.loads(announced.value)["data"]["responses"] == 1

    async def reported() -> dict[str, Any] | None:
        summary = await _summary(reporting, tenant)
        return summary if summary["promoters"] == 1 else None

    summary = await eventually(reported)
    assert _categories(summary) == (1, 1, 0, 0)
    assert (summary["recommended_share"], summary["recommended_answers"]) == (1.0, 1)
    assert (summary["average_csat"], summary["average_effort"]) == (5.0, 2.0)
    (row,) = await _responses(reporting, tenant)
    assert (row["score"], row["comment"], row["revision"]) == (9, "Sorry, I meant 9!", 2)
    assert (row["recommended"], row["csat"], row["effort"]) == (True, 5, 2)

    # The same update again (redelivered, and re-sent under a new event id), the first answer again,
    # and an older revision after a newer one: none of them changes anything.
    await answer.send(answer.updated(3, 9, comment="Great service", recommended=False, csat=4, effort=2))
    await answer.send(correction)
    await answer.send(answer.updated(2, 9, comment="Sorry, I meant 9!", recommended=True, csat=5, effort=2))
    await answer.send(answer.responded(3))
    await answer.send(answer.updated(2, 1, comment="stale"))
    # Behind them on the same partition: once this new answer shows, they were all handled.
    marker = Respondent(kafka_bootstrap, tenant, touchpoint, answer.customer_id)
    await marker.send(marker.responded(7))

    async def scored_both() -> dict[str, Any] | None:
        body = await _nps(scoring, tenant)
        return body if body["responses"] == 2 else None

    async def reported_both() -> dict[str, Any] | None:
        summary = await _summary(reporting, tenant)
        return summary if summary["responses"] == 2 else None

    body = await eventually(scored_both)
    assert _categories(body) == (2, 1, 1, 0)
    summary = await eventually(reported_both)
    assert _categories(summary) == (2, 1, 1, 0)
    assert (summary["recommended_share"], summary["average_csat"]) == (0.0, 4.0)
    rows = {row["response_id"]: row for row in await _responses(reporting, tenant)}
    latest = rows[str(answer.response_id)]
    assert (latest["score"], latest["comment"], latest["revision"]) == (9, "Great service", 3)

    # Alerting: a detractor answer behind them on the partition opens its own case; the first stays.
    late_detractor = Respondent(kafka_bootstrap, tenant, touchpoint, answer.customer_id)
    await late_detractor.send(late_detractor.responded(2))

    async def two_cases() -> list[dict[str, Any]] | None:
        cases = await _cases(alerting, tenant)
        return cases if len(cases) == 2 else None

    cases = {row["score"]: row for row in await eventually(two_cases, within=30)}
    first = cases[9]
    assert (first["status"], first["resolution"], first["comment"]) == (
        "resolved",
        "score_changed",
        "Great service",
    )
    assert (first["recommended"], first["csat"]) == (False, 4)
    assert cases[2]["status"] == "open"


async def test_a_passive_who_lowers_their_score_gets_a_case_on_the_clock_of_the_lowered_score(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    scoring, alerting, _ = await _services(start_service)
    tenant = await provision_tenant(scoring.runtime, alerting.runtime)
    answer = Respondent(kafka_bootstrap, tenant, f"support-{uuid.uuid4().hex[:8]}")

    await answer.send(answer.responded(8))
    body = await eventually(lambda: _scored(scoring, tenant, 1))
    assert _categories(body) == (1, 0, 1, 0)
    lowered = answer.updated(2, 4, comment="Then the parcel arrived broken.", effort=6)
    await answer.send(lowered)

    (case,) = await eventually(lambda: _cases(alerting, tenant), within=30)
    assert (case["status"], case["score"], case["comment"]) == ("open", 4, "Then the parcel arrived broken.")
    assert case["effort"] == 6
    assert case["owner_email"] == tenant.owner_email
    assert isinstance(lowered.data, SurveyResponseUpdated)
    # Score 4 is urgent: 4 business hours from when the customer lowered it.
    due = clock(lowered.data.updated_at, Priority.URGENT, DEFAULT_POLICY).first_contact_due
    assert datetime.fromisoformat(case["due_at"]) == due

    async def detractor() -> dict[str, Any] | None:
        current = await _nps(scoring, tenant)
        return current if current["detractors"] == 1 else None

    body = await eventually(detractor)
    assert _categories(body) == (1, 0, 0, 1)
    assert body["nps"] == -100.0


async def test_an_update_before_its_answer_counts_and_the_late_answer_does_not_override_it(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    scoring, alerting, reporting = await _services(start_service)
    tenant = await provision_tenant(scoring.runtime, alerting.runtime, reporting.runtime)
    touchpoint = f"delivery-{uuid.uuid4().hex[:8]}"
    answer = Respondent(kafka_bootstrap, tenant, touchpoint)

    await answer.send(answer.updated(2, 2, comment="Never arrived", csat=1))
    await answer.send(answer.responded(10))
    marker = Respondent(kafka_bootstrap, tenant, touchpoint, answer.customer_id)
    await marker.send(marker.responded(8))

    async def both_counted() -> dict[str, Any] | None:
        body = await _nps(scoring, tenant)
        return body if body["responses"] == 2 else None

    assert _categories(await eventually(both_counted)) == (2, 0, 1, 1)
    (case,) = await eventually(lambda: _cases(alerting, tenant), within=30)
    assert (case["status"], case["score"], case["comment"], case["csat"]) == ("open", 2, "Never arrived", 1)

    async def reported() -> dict[str, Any] | None:
        summary = await _summary(reporting, tenant)
        return summary if summary["responses"] == 2 else None

    assert _categories(await eventually(reported)) == (2, 0, 1, 1)
    rows = {row["response_id"]: row for row in await _responses(reporting, tenant)}
    assert (rows[str(answer.response_id)]["score"], rows[str(answer.response_id)]["revision"]) == (2, 2)


async def test_the_funnel_counts_each_step_once_per_invitation(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    reporting = await start_service(build_reporting, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    touchpoint = f"funnel-{uuid.uuid4().hex[:8]}"
    answered = Respondent(kafka_bootstrap, tenant, touchpoint)
    ignored = Respondent(kafka_bootstrap, tenant, touchpoint, answered.customer_id)

    opened = answered.step(SURVEY_OPENED)
    for event in (
        answered.sent(),
        ignored.sent(),
        opened,
        opened,  # redelivered
        answered.step(SURVEY_OPENED),  # opened again (another event, the same invitation)
        answered.step(SURVEY_CLICKED),
        answered.responded(10),
        answered.updated(2, 10, recommended=True, csat=4),
        ignored.step(SURVEY_REMINDED),
        ignored.step(SURVEY_OPENED),
        ignored.step(SURVEY_EXPIRED),
    ):
        await answered.send(event)

    async def expired() -> dict[str, Any] | None:
        summary = await _summary(reporting, tenant)
        return summary if summary["funnel"]["expired"] == 1 else None

    summary = await eventually(expired)
    expected = {
        "sent": 2,
        "opened": 2,
        "machine_opened": 0,
        "clicked": 1,
        "responded": 1,
        "reminded": 1,
        "bounced": 0,
        "unsubscribed": 0,
        "expired": 1,
        "failed": 0,
    }
    assert summary["funnel"] == expected
    assert summary["by_touchpoint"][0]["funnel"] == expected
    assert (summary["recommended_share"], summary["average_csat"], summary["average_effort"]) == (
        1.0,
        4.0,
        None,
    )
    assert summary["response_rate"] == 0.5
