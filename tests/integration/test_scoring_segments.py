"""Segments and windows against the real broker and database: answers with a survey context in on
Kafka, a segment's score over the last 30 days out over HTTP, a revision that moves it, the bound of
200 values per dimension, and ``nps.updated`` for each changed cell."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord

from libs.common import topics
from libs.common.events import (
    SURVEY_RESPONDED,
    SURVEY_RESPONSE_UPDATED,
    Contract,
    Event,
    SurveyContext,
    SurveyResponded,
    SurveyResponseUpdated,
    new_event,
)
from services.scoring.config import ScoringSettings
from services.scoring.main import build
from tests.conftest import (
    ServiceUnderTest,
    StartService,
    TestTenant,
    eventually,
    provision_tenant,
    read_topic,
)

pytestmark = pytest.mark.integration


def answer(
    tenant: TestTenant, touchpoint: str, score: int, attributes: dict[str, str], revision: int = 1, **ids: Any
) -> Event[Contract]:
    customer = ids.get("customer", f"c-{uuid.uuid4().hex[:12]}")
    common = {
        "response_id": ids.get("response_id", uuid.uuid4()),
        "invitation_id": ids.get("invitation_id", uuid.uuid4()),
        "customer_id": customer,
        "touchpoint": touchpoint,
        "score": score,
        "responded_at": datetime.now(UTC),
        "context": SurveyContext(attributes=attributes, locale="da-DK"),
    }
    data: Contract = (
        SurveyResponded(**common, email=f"{customer}@shop.example")
        if revision == 1
        else SurveyResponseUpdated(
            **common, revision=revision, updated_at=datetime.now(UTC) + timedelta(seconds=1)
        )
    )
    event_type = SURVEY_RESPONDED if revision == 1 else SURVEY_RESPONSE_UPDATED
    return new_event(
        event_type, tenant_id=tenant.tenant_id, data=data, subject=customer, source="/nps/survey"
    )


async def send(bootstrap: str, *events: Event[Contract]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for event in events:
            assert event.envelope.subject is not None
            value, key = event.envelope.to_json(), event.envelope.subject.encode()
            await producer.send(topics.SURVEY_EVENTS, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def nps_of(service: ServiceUnderTest, tenant: TestTenant, **params: str) -> dict[str, Any]:
    response = await service.client.get("/v1/nps", headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_segments_score_over_the_last_30_days_its_revision_its_bound_and_its_events(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    scoring = await start_service(build, ScoringSettings)
    tenant = await provision_tenant(scoring.runtime)
    touchpoint = f"checkout-{uuid.uuid4().hex[:8]}"

    declared = await scoring.client.put(
        "/v1/nps/segments", json={"dimensions": ["tier"]}, headers=tenant.headers
    )
    assert declared.status_code == 200, declared.text
    assert (await scoring.client.get("/v1/nps/segments", headers=tenant.headers)).json()["dimensions"] == [
        "tier"
    ]
    refused = await scoring.client.put(
        "/v1/nps/segments", json={"dimensions": ["country"]}, headers=tenant.headers
    )
    assert refused.status_code == 422 and refused.json()["problems"][0]["field"] == "body.dimensions"
    bad_window = await scoring.client.get("/v1/nps", params={"window": "1y"}, headers=tenant.headers)
    assert bad_window.status_code == 422 and bad_window.json()["problems"][0]["field"] == "query.window"
    bad_segment = await scoring.client.get("/v1/nps", params={"segment": "DK"}, headers=tenant.headers)
    assert bad_segment.status_code == 422 and bad_segment.json()["problems"][0]["field"] == "query.segment"

    detractor = answer(tenant, touchpoint, 3, {"country": "DK", "tier": "gold"})
    await send(
        kafka_bootstrap,
        detractor,
        answer(tenant, touchpoint, 10, {"country": "DK"}),
        answer(tenant, touchpoint, 9, {"country": "DK"}),
        answer(tenant, touchpoint, 0, {"country": "SE"}),
    )

    async def denmark(expected_nps: float) -> dict[str, Any] | None:
        body = await nps_of(scoring, tenant, segment="country:DK", window="30d")
        return body if body["nps"] == expected_nps else None

    body = await eventually(lambda: denmark(33.33))
    assert (body["responses"], body["promoters"], body["detractors"]) == (3, 2, 1)
    assert [row["touchpoint"] for row in body["by_touchpoint"]] == [touchpoint]
    assert (await nps_of(scoring, tenant, segment="tier:gold"))["responses"] == 1
    assert (await nps_of(scoring, tenant, segment="language:da", window="7d"))["responses"] == 4
    assert (await nps_of(scoring, tenant, segment="country:NO"))["responses"] == 0

    assert isinstance(detractor.data, SurveyResponded)
    ids = {key: getattr(detractor.data, key) for key in ("response_id", "invitation_id")}
    # The revision is about Sweden now: the answer stays in Denmark, where it was counted.
    await send(
        kafka_bootstrap,
        answer(tenant, touchpoint, 10, {"country": "SE"}, 2, customer=detractor.data.customer_id, **ids),
    )
    body = await eventually(lambda: denmark(100.0))
    assert body["responses"] == 3
    assert (await nps_of(scoring, tenant, segment="country:SE", window="30d"))["responses"] == 1

    def denmark_today(record: ConsumerRecord[bytes, bytes]) -> bool:
        event = json.loads(record.value)
        data = event["data"]
        return bool(
            event["tenantid"] == tenant.tenant_id
            and data.get("segment") == {"dimension": "country", "value": "DK"}
            and data["window"]["bucket"] == "day"
            and data["version"] == 4
        )

    [update] = await read_topic(kafka_bootstrap, topics.SCORES, denmark_today)
    assert update.key == touchpoint.encode()
    data = json.loads(update.value)["data"]
    today = datetime.now(UTC).date()
    assert data["window"] == {
        "bucket": "day",
        "start": today.isoformat(),
        "end": (today + timedelta(1)).isoformat(),
    }
    assert data["distribution"] == [0] * 9 + [1, 2]
    assert (data["responses"], data["nps"], data["confidence_interval"]["level"]) == (3, 100.0, 0.95)

    stores = [answer(tenant, "store-visit", 8, {"store": f"store-{n:03d}"}) for n in range(250)]
    await send(kafka_bootstrap, *stores)

    async def all_counted() -> dict[str, Any] | None:
        body = await nps_of(scoring, tenant, touchpoint="store-visit")
        return body if body["responses"] == 250 else None

    await eventually(all_counted)
    assert (await nps_of(scoring, tenant, segment="store:(other)"))["responses"] == 50

    def first_state_of_a_store(record: ConsumerRecord[bytes, bytes]) -> bool:
        event = json.loads(record.value)
        segment = event["data"].get("segment") or {}
        return bool(
            event["tenantid"] == tenant.tenant_id
            and segment.get("dimension") == "store"
            and segment.get("value") != "(other)"
            and event["data"]["window"]["bucket"] == "month"
        )

    kept = await read_topic(kafka_bootstrap, topics.SCORES, first_state_of_a_store, count=200)
    assert len({json.loads(record.value)["data"]["segment"]["value"] for record in kept}) == 200
