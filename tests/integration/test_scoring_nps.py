"""Scoring against the real broker and database: answers in on Kafka, the score out over HTTP and
as ``nps.updated`` events."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from libs.common import topics
from libs.common.events import SURVEY_RESPONDED, Contract, Event, SurveyResponded, new_event
from services.scoring.config import ScoringSettings
from services.scoring.main import build
from tests.conftest import (
    ServiceUnderTest,
    StartService,
    TestTenant,
    eventually,
    produce,
    provision_tenant,
    read_topic,
)

pytestmark = pytest.mark.integration


def answer(tenant: TestTenant, touchpoint: str, score: int, customer: str) -> Event[Contract]:
    return new_event(
        SURVEY_RESPONDED,
        tenant_id=tenant.tenant_id,
        data=SurveyResponded(
            response_id=uuid.uuid4(),
            invitation_id=uuid.uuid4(),
            customer_id=customer,
            email=f"{customer}@shop.example",
            touchpoint=touchpoint,
            score=score,
            responded_at=datetime.now(UTC),
        ),
        subject=customer,
        source="/nps/survey",
    )


async def send(bootstrap: str, event: Event[Contract]) -> None:
    assert event.envelope.subject is not None
    await produce(
        bootstrap, topics.SURVEY_EVENTS, event.envelope.to_json(), key=event.envelope.subject.encode()
    )


async def nps_of(service: ServiceUnderTest, tenant: TestTenant, **params: str) -> dict[str, Any]:
    response = await service.client.get("/v1/nps", headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_answers_on_kafka_become_the_tenants_score_counted_once(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    scoring = await start_service(build, ScoringSettings)
    tenant = await provision_tenant(scoring.runtime)
    stranger = await provision_tenant(scoring.runtime)
    touchpoint = f"checkout-{uuid.uuid4().hex[:8]}"
    # One customer, so one partition: the redelivery below is handled before the last answer.
    customer = f"customer-{uuid.uuid4().hex[:8]}"
    answers = [answer(tenant, touchpoint, score, customer) for score in (3, 9, 10)]
    for event in answers:
        await send(kafka_bootstrap, event)

    async def counted(expected: int) -> dict[str, Any] | None:
        body = await nps_of(scoring, tenant)
        return body if body["responses"] >= expected else None

    body = await eventually(lambda: counted(3))
    assert (body["promoters"], body["passives"], body["detractors"]) == (2, 0, 1)
    assert body["nps"] == 33.33
    assert body["confidence_interval"]["level"] == 0.95
    assert body["confidence_interval"]["low"] <= 33.33 <= body["confidence_interval"]["high"]
    assert [row["touchpoint"] for row in body["by_touchpoint"]] == [touchpoint]
    assert body["by_touchpoint"][0]["nps"] == 33.33

    # The same event again, in a later batch, then one new passive answer behind it.
    await send(kafka_bootstrap, answers[1])
    await send(kafka_bootstrap, answer(tenant, touchpoint, 7, customer))
    body = await eventually(lambda: counted(4))
    assert (body["responses"], body["promoters"], body["passives"], body["detractors"]) == (4, 2, 1, 1)
    assert body["nps"] == 25.0

    assert await nps_of(scoring, stranger) == {
        "nps": None,
        "responses": 0,
        "promoters": 0,
        "passives": 0,
        "detractors": 0,
        "confidence_interval": None,
        "by_touchpoint": [],
    }
    assert (await nps_of(scoring, tenant, touchpoint="some-other-touchpoint"))["responses"] == 0
    assert (await scoring.client.get("/v1/nps")).status_code == 401
    revoked_or_wrong = {"Authorization": "Bearer nps_0123456789abcdef_" + "x" * 43}
    assert (await scoring.client.get("/v1/nps", headers=revoked_or_wrong)).status_code == 401

    def latest_score_of_tenant(record: ConsumerRecord[bytes, bytes]) -> bool:
        event = json.loads(record.value)
        return bool(
            event["tenantid"] == tenant.tenant_id
            and event["data"]["responses"] == 4
            and event["data"]["window"]["bucket"] == "all"
        )

    [update] = await read_topic(kafka_bootstrap, topics.SCORES, latest_score_of_tenant)
    event = json.loads(update.value)
    assert event["type"] == "nps.updated.v1"
    assert update.key == touchpoint.encode()
    data = event["data"]
    assert (data["touchpoint"], data["promoters"], data["passives"], data["detractors"]) == (
        touchpoint,
        2,
        1,
        1,
    )
    assert data["nps"] == 25.0
    assert data["distribution"] == [0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1]
    assert (data["version"], data.get("segment"), data["confidence_interval"]["level"]) == (4, None, 0.95)
