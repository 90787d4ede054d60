"""The daily rollup of answers against the real broker and database: answers and their revisions
in any order end in a summary equal to a recount of the answers, a range inside a day counts only
that part of it, and the recommended panel counts by score from the rollup."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from libs.common.events import (
    SURVEY_RESPONDED,
    SURVEY_RESPONSE_UPDATED,
    Contract,
    Event,
    SurveyResponded,
    SurveyResponseUpdated,
    new_event,
)
from libs.common.kafka import is_transient
from services.reporting.config import ReportingSettings
from services.reporting.handlers.read_model import _answer
from services.reporting.main import build
from services.reporting.repository import AnswersRaced
from tests.conftest import ServiceUnderTest, StartService, TestTenant, eventually, provision_tenant
from tests.support.desk import publish_all

pytestmark = pytest.mark.integration


class Answer:
    """One customer's answer to one invitation, and its revisions."""

    def __init__(self, tenant: TestTenant, touchpoint: str, responded_at: datetime) -> None:
        self.tenant = tenant
        self.touchpoint = touchpoint
        self.responded_at = responded_at
        self.customer_id = f"customer-{uuid.uuid4().hex[:8]}"
        self.invitation_id = uuid.uuid4()
        self.response_id = uuid.uuid4()

    def _event(self, event_type: str, data: Contract) -> Event[Contract]:
        return new_event(
            event_type, tenant_id=self.tenant.tenant_id, data=data, subject=self.customer_id, source="/tests"
        )

    def responded(self, score: int) -> Event[Contract]:
        data = SurveyResponded(
            response_id=self.response_id,
            invitation_id=self.invitation_id,
            customer_id=self.customer_id,
            email=f"{self.customer_id}@shop.example",
            touchpoint=self.touchpoint,
            score=score,
            responded_at=self.responded_at,
        )
        return self._event(SURVEY_RESPONDED, data)

    def updated(self, revision: int, score: int, **answers: Any) -> Event[Contract]:
        data = SurveyResponseUpdated(
            response_id=self.response_id,
            invitation_id=self.invitation_id,
            customer_id=self.customer_id,
            touchpoint=self.touchpoint,
            revision=revision,
            score=score,
            responded_at=self.responded_at,
            updated_at=self.responded_at + timedelta(minutes=revision),
            **answers,
        )
        return self._event(SURVEY_RESPONSE_UPDATED, data)


async def _get(service: ServiceUnderTest, tenant: TestTenant, path: str, **params: str) -> dict[str, Any]:
    response = await service.client.get(path, headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _recount(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary's answer fields, counted from the answers themselves."""
    scores = [row["score"] for row in rows]
    recommended = [row["recommended"] for row in rows if row["recommended"] is not None]
    csat = [row["csat"] for row in rows if row["csat"] is not None]
    effort = [row["effort"] for row in rows if row["effort"] is not None]
    promoters, detractors = sum(s >= 9 for s in scores), sum(s <= 6 for s in scores)
    return {
        "responses": len(rows),
        "promoters": promoters,
        "passives": len(rows) - promoters - detractors,
        "detractors": detractors,
        "nps": round(100 * (promoters - detractors) / len(rows), 2) if rows else None,
        "recommended_answers": len(recommended),
        "recommended_share": round(sum(recommended) / len(recommended), 4) if recommended else None,
        "csat_answers": len(csat),
        "average_csat": round(sum(csat) / len(csat), 2) if csat else None,
        "effort_answers": len(effort),
        "average_effort": round(sum(effort) / len(effort), 2) if effort else None,
        "responded": len(rows),
    }


def _answer_fields(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        key: summary["funnel"]["responded"] if key == "responded" else summary[key] for key in _recount([])
    }


async def test_answers_and_revisions_in_any_order_sum_to_a_recount_of_the_answers(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    touchpoints = [f"checkout-{uuid.uuid4().hex[:6]}", f"support-{uuid.uuid4().hex[:6]}"]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    shuffle = random.Random(11)
    answers = [
        Answer(tenant, touchpoints[index % 2], today - timedelta(days=index % 3, hours=-(index % 5)))
        for index in range(8)
    ]
    events: list[Event[Contract]] = []
    for index, answer in enumerate(answers):
        versions = [
            answer.responded(index + 1),
            answer.updated(2, 10 - index, recommended=index % 2 == 0, csat=1 + index % 5),
            answer.updated(3, 10 - index, recommended=index % 3 == 0, effort=1 + index % 7),
        ][: 1 + index % 3]
        # A redelivery of one version, and the first answer again under a new event id.
        events.extend([*versions, shuffle.choice(versions), answer.responded(index + 1)])
    shuffle.shuffle(events)
    await publish_all(kafka_bootstrap, events)

    async def settled() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = (await _get(reporting, tenant, "/v1/reports/responses", limit="1000"))[
            "responses"
        ]
        final = {str(answer.response_id): 1 + index % 3 for index, answer in enumerate(answers)}
        return rows if {row["response_id"]: row["revision"] for row in rows} == final else None

    rows = await eventually(settled)
    summary = await _get(reporting, tenant, "/v1/reports/summary")
    assert _answer_fields(summary) == _recount(rows)
    for part in summary["by_touchpoint"]:
        assert _answer_fields(part) == _recount(
            [row for row in rows if row["touchpoint"] == part["touchpoint"]]
        )
    since = (today - timedelta(days=1, hours=-2)).isoformat()
    ranged = await _get(reporting, tenant, "/v1/reports/summary", since=since)
    in_range = [
        row for row in rows if datetime.fromisoformat(row["responded_at"]) >= datetime.fromisoformat(since)
    ]
    assert _answer_fields(ranged) == _recount(in_range)


async def test_a_range_inside_a_day_counts_that_part_of_it_and_the_panel_counts_by_score(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    touchpoint = f"delivery-{uuid.uuid4().hex[:8]}"
    day = datetime(2026, 1, 10, tzinfo=UTC)
    morning, noon, evening, next_morning = (
        Answer(tenant, touchpoint, day + timedelta(hours=hours)) for hours in (8, 12, 18, 30)
    )
    await publish_all(
        kafka_bootstrap,
        [
            morning.responded(10),
            morning.updated(2, 10, recommended=True),
            noon.responded(10),
            noon.updated(2, 10, recommended=False),
            evening.responded(3),
            evening.updated(2, 9, recommended=True),
            next_morning.responded(6),
            next_morning.updated(2, 6, recommended=False),
        ],
    )

    async def all_four() -> dict[str, Any] | None:
        body = await _get(reporting, tenant, "/v1/reports/summary", since="2026-01-01")
        return body if body["recommended_answers"] == 4 else None

    whole = await eventually(all_four)
    assert (whole["responses"], whole["promoters"], whole["detractors"]) == (4, 3, 1)

    afternoon = await _get(
        reporting, tenant, "/v1/reports/summary", since="2026-01-10T10:00:00Z", until="2026-01-10T20:00:00Z"
    )
    assert (afternoon["responses"], afternoon["promoters"], afternoon["recommended_answers"]) == (2, 2, 2)
    assert afternoon["recommended_share"] == 0.5
    across = await _get(
        reporting, tenant, "/v1/reports/summary", since="2026-01-10T13:00:00Z", until="2026-01-11T07:00:00Z"
    )
    assert (across["responses"], across["promoters"], across["detractors"]) == (2, 1, 1)
    assert (await _get(reporting, tenant, "/v1/reports/summary", until="2026-01-10T12:00:00Z"))[
        "responses"
    ] == 1

    panel = await _get(reporting, tenant, "/v1/reports/recommended", since="2026-01-10", until="2026-01-12")
    assert (panel["since"], panel["until"]) == ("2026-01-10", "2026-01-12")
    by_score = {row["score"]: row for row in panel["by_score"]}
    assert [row["score"] for row in panel["by_score"]] == list(range(11))
    assert (by_score[10]["answered"], by_score[10]["recommended"], by_score[10]["share"]) == (2, 1, 0.5)
    assert 0 < by_score[10]["interval"]["low"] < 0.5 < by_score[10]["interval"]["high"] < 1
    assert by_score[10]["interval"]["level"] == 0.95
    assert (by_score[9]["answered"], by_score[9]["share"], by_score[3]["answered"]) == (1, 1.0, 0)
    assert (by_score[6]["answered"], by_score[6]["recommended"], by_score[6]["share"]) == (1, 0, 0.0)
    assert by_score[0] == {"score": 0, "answered": 0, "recommended": 0, "share": None, "interval": None}
    groups = {row["group"]: (row["answered"], row["recommended"]) for row in panel["by_group"]}
    assert groups == {"promoter": (3, 2), "passive": (0, 0), "detractor": (1, 0)}

    one_day = await _get(
        reporting,
        tenant,
        "/v1/reports/recommended",
        since="2026-01-11",
        until="2026-01-12",
        touchpoint=touchpoint,
    )
    assert [row["answered"] for row in one_day["by_group"]] == [0, 0, 1]
    elsewhere = await _get(
        reporting, tenant, "/v1/reports/recommended", since="2026-01-10", touchpoint="elsewhere"
    )
    assert all(row["answered"] == 0 for row in elsewhere["by_score"])
    refused = await reporting.client.get(
        "/v1/reports/recommended",
        headers=tenant.headers,
        params={"since": "2026-01-12", "until": "2026-01-10"},
    )
    assert refused.status_code == 422
    assert "since" in refused.text


async def test_an_answer_stored_after_the_locking_read_refuses_the_batch_rather_than_miscount_it(
    start_service: StartService,
) -> None:
    """Two consumers with the same new answer: the second one's locking read found nothing to lock,
    so what it would add to the rollup is wrong once the first commits. Its upsert notices, and the
    batch fails as a transient error, which the consumer retries."""
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    answer = Answer(tenant, "checkout", datetime.now(UTC))
    event = answer.responded(9)
    assert isinstance(event.data, SurveyResponded)
    key = (uuid.UUID(tenant.tenant_id), answer.response_id)
    database = reporting.runtime.database
    async with database.uow() as late:
        assert await late.repository.held_answers([key]) == {}
        async with database.uow() as first:
            stored = await first.repository.record_responses([_answer(key[0], event.data)], held=())
            assert list(stored) == [key]
            await first.commit()
        with pytest.raises(AnswersRaced) as raised:
            await late.repository.record_responses([_answer(key[0], event.data)], held=())
    assert is_transient(raised.value)
