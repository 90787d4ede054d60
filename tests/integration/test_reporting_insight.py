"""The insight panels and the live stream against the real broker and database: score cells in on
Kafka as scoring announces them (``nps.updated.v1`` on ``nps.scores``), scores, trend, segments
and Server-Sent Events out over HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaProducer

from libs.common import topics
from libs.common.app import create_app
from libs.common.events import NPS_UPDATED, NpsSegment, NpsUpdated, NpsWindow, new_event
from libs.devstack.ports import free_port
from services.reporting.config import ReportingSettings
from services.reporting.domain.insight import Bucket, bucket_end, counts_of
from services.reporting.main import build
from tests.conftest import ServiceUnderTest, StartService, TestTenant, eventually, provision_tenant
from tests.integration.test_reporting_summary import Customer

pytestmark = pytest.mark.integration

FEB = (date(2025, 2, 1), date(2025, 3, 1))


def scores(promoters: int = 0, detractors: int = 0, passives: int = 0) -> list[int]:
    return [detractors] + [0] * 6 + [passives, 0, 0, promoters]


def cell(
    tenant: TestTenant,
    touchpoint: str,
    bucket: Bucket,
    start: date,
    distribution: list[int],
    *,
    version: int = 1,
    segment: tuple[str, str] | None = None,
) -> tuple[str, bytes]:
    """One cell's nps.updated event as scoring emits it: (Kafka key, CloudEvent JSON)."""
    counts = counts_of(distribution)
    data = NpsUpdated(
        touchpoint=touchpoint,
        promoters=counts.promoters,
        passives=counts.passives,
        detractors=counts.detractors,
        responses=counts.responses,
        nps=counts.nps or 0.0,
        as_of=datetime.now(UTC),
        distribution=distribution,
        window=NpsWindow(bucket=bucket, start=start, end=bucket_end(bucket, start)),
        segment=None if segment is None else NpsSegment(dimension=segment[0], value=segment[1]),
        version=version,
    )
    event = new_event(NPS_UPDATED, tenant_id=tenant.tenant_id, data=data, subject=touchpoint, source="/tests")
    return f"{tenant.tenant_id}:{touchpoint}", event.envelope.to_json()


async def publish(bootstrap: str, *cells: tuple[str, bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in cells:
            await producer.send_and_wait(topics.SCORES, value, key=key.encode())
    finally:
        await producer.stop()


async def get(service: ServiceUnderTest, tenant: TestTenant, path: str, **params: str) -> dict[str, Any]:
    response = await service.client.get(path, headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def feb(**params: str) -> dict[str, str]:
    return {"since": FEB[0].isoformat(), "until": FEB[1].isoformat(), **params}


async def test_scores_trend_and_segments_sum_the_cells_of_the_tenant_only(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant, stranger = await provision_tenant(reporting.runtime), await provision_tenant(reporting.runtime)
    web, shop = f"web-{uuid.uuid4().hex[:8]}", f"shop-{uuid.uuid4().hex[:8]}"
    await publish(
        kafka_bootstrap,
        # February as a month (its day cells are in the month already and must not count twice).
        cell(tenant, web, "month", FEB[0], scores(promoters=20, detractors=5), version=3),
        cell(tenant, web, "day", date(2025, 2, 3), scores(promoters=20), version=1),
        # The 28 days before: day cells; 3 January is before them.
        cell(tenant, web, "day", date(2025, 1, 10), scores(promoters=5, detractors=15)),
        cell(tenant, web, "day", date(2025, 1, 31), scores(promoters=1)),
        cell(tenant, web, "day", date(2025, 1, 3), scores(promoters=100)),
        cell(tenant, web, "week", date(2025, 2, 3), scores(promoters=4)),
        cell(tenant, web, "month", FEB[0], scores(promoters=30), segment=("country", "DK")),
        cell(
            tenant,
            web,
            "week",
            date(2025, 2, 10),
            scores(promoters=3, detractors=1),
            segment=("country", "DK"),
        ),
        cell(tenant, web, "month", FEB[0], scores(promoters=6, detractors=6), segment=("country", "SE")),
        cell(tenant, shop, "month", FEB[0], scores(passives=12), segment=("country", "DK")),
        cell(tenant, shop, "month", FEB[0], scores(detractors=2), segment=("country", "NO")),
        # An older version arriving late, then a marker to know it has been consumed.
        cell(tenant, web, "month", FEB[0], scores(detractors=99), version=2),
        cell(tenant, web, "day", date(2024, 6, 1), scores(promoters=1)),
    )

    async def marker_seen() -> bool:
        since = {"since": "2024-06-01", "until": "2024-06-02"}
        body = await get(reporting, tenant, "/v1/reports/scores", **since)
        return bool(body["score"]["responses"] == 1)

    await eventually(marker_seen, within=15)
    body = await get(reporting, tenant, "/v1/reports/scores", **feb(touchpoint=web, compare="previous"))
    assert body["since"] == "2025-02-01" and body["until"] == "2025-03-01"
    assert body["score"]["responses"] == 25 and body["score"]["nps"] == 60.0, (
        "the late version 2 changed nothing"
    )
    assert body["distribution"] == scores(promoters=20, detractors=5)
    assert body["score"]["too_few"] is False and body["score"]["interval"]["level"] == 0.95
    assert body["previous"]["since"] == "2025-01-04" and body["previous"]["until"] == "2025-02-01"
    assert body["previous"]["score"]["responses"] == 21
    assert body["change"]["difference"] == round(60.0 - 100 * (6 - 15) / 21, 2)
    assert body["change"]["significant"] is True and body["change"]["too_few"] is False

    dk = await get(reporting, tenant, "/v1/reports/scores", **feb(segment="country:DK"))
    assert dk["score"]["responses"] == 42 and dk["previous"] is None and dk["change"] is None

    trend = await get(reporting, tenant, "/v1/reports/trend", **feb(touchpoint=web))
    assert trend["bucket"] == "week"
    assert [(p["start"], p["score"]["responses"]) for p in trend["points"]] == [
        ("2025-01-27", 0),
        ("2025-02-03", 4),
        ("2025-02-10", 0),
        ("2025-02-17", 0),
        ("2025-02-24", 0),
    ]
    assert trend["points"][0]["score"]["nps"] is None and trend["points"][-1]["end"] == "2025-03-03"

    first = await get(reporting, tenant, "/v1/reports/segments", **feb(dimension="country", limit="2"))
    assert [(r["touchpoint"], r["value"], r["score"]["responses"]) for r in first["rows"]] == [
        (web, "DK", 30),
        (shop, "DK", 12),
    ]
    assert first["rows"][0]["sparkline"] == [None, None, 50.0, None, None]
    second = await get(
        reporting,
        tenant,
        "/v1/reports/segments",
        **feb(dimension="country", limit="2", cursor=first["next_cursor"]),
    )
    assert [(r["value"], r["score"]["responses"]) for r in second["rows"]] == [("SE", 12), ("NO", 2)]
    by_nps = await get(reporting, tenant, "/v1/reports/segments", **feb(dimension="country", sort="-nps"))
    assert [r["score"]["nps"] for r in by_nps["rows"]] == [100.0, 0.0, 0.0, -100.0]
    assert by_nps["next_cursor"] is None and second["next_cursor"] is None

    nothing = await get(reporting, stranger, "/v1/reports/scores", **feb())
    assert nothing["score"]["responses"] == 0 and nothing["score"]["nps"] is None
    assert (await get(reporting, stranger, "/v1/reports/segments", **feb(dimension="country")))["rows"] == []


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/reports/scores", {"since": "2025-03-01", "until": "2025-02-01"}, "query.since"),
        ("/v1/reports/scores", {"since": "2015-01-01", "until": "2025-01-01"}, "query.since"),
        (
            "/v1/reports/trend",
            {"since": "2024-01-01", "until": "2025-06-01", "bucket": "day"},
            "query.bucket",
        ),
        ("/v1/reports/segments", {"dimension": "country", "limit": "100000"}, "query.limit"),
        ("/v1/reports/segments", {"dimension": "country", "cursor": "not a cursor!"}, "query.cursor"),
        ("/v1/reports/segments", {"dimension": "country", "cursor": "W10"}, "query.cursor"),
        ("/v1/reports/scores", {"segment": "country\x00:DK"}, "query.segment"),
        ("/v1/reports/scores", {"segment": "country"}, "query.segment"),
        ("/v1/reports/trend", {"touchpoint": "web'; DROP TABLE reporting.nps_cells; --"}, "query.touchpoint"),
        ("/v1/reports/segments", {"dimension": "country' OR 1=1 --"}, "query.dimension"),
        ("/v1/reports/summary", {"since": "2025-03-01", "until": "2025-02-01"}, "query.since"),
    ],
)
async def test_hostile_parameters_are_refused_naming_the_parameter(
    start_service: StartService, path: str, params: dict[str, str], field: str
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    response = await reporting.client.get(path, headers=tenant.headers, params=params)
    assert response.status_code == 422, response.text
    assert field in [problem["field"] for problem in response.json()["problems"]]


@asynccontextmanager
async def served(service: ServiceUnderTest) -> AsyncIterator[str]:
    """The app over real HTTP: the in-process transport would wait for the stream to end."""
    port = free_port()
    config = uvicorn.Config(
        create_app(service.runtime), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())

    async def started() -> bool:
        if serving.done():
            serving.result()
        return server.started

    try:
        await eventually(started, within=10, interval=0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def test_the_stream_pushes_a_changed_cell_of_the_tenant(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    touchpoint = f"live-{uuid.uuid4().hex[:8]}"
    today = datetime.now(UTC).date()
    async with (
        served(reporting) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=20) as client,
        client.stream(
            "GET", "/v1/nps/stream", headers=tenant.headers, params={"touchpoint": touchpoint}
        ) as stream,
    ):
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        assert await anext(lines) == "retry: 3000"
        await publish(
            kafka_bootstrap,
            cell(tenant, f"other-{touchpoint}", "day", today, scores(promoters=1), version=1),
            cell(tenant, touchpoint, "day", today, scores(promoters=3, detractors=1), version=7),
        )

        async def next_event() -> dict[str, Any]:
            while await anext(lines) != "event: nps":
                pass
            data = await anext(lines)
            assert data.startswith("data: ")
            pushed: dict[str, Any] = json.loads(data.removeprefix("data: "))
            return pushed

        pushed = await asyncio.wait_for(next_event(), timeout=15)
    assert pushed["touchpoint"] == touchpoint and pushed["version"] == 7 and pushed["segment"] is None
    assert pushed["window"] == {
        "bucket": "day",
        "start": today.isoformat(),
        "end": (today + timedelta(days=1)).isoformat(),
    }
    assert pushed["score"]["responses"] == 4 and pushed["score"]["nps"] == 50.0
    assert pushed["distribution"] == scores(promoters=3, detractors=1)
    assert set(pushed) == {"touchpoint", "segment", "window", "score", "distribution", "version"}


async def test_until_ends_the_summary_and_the_answers_before_it(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    customer = Customer(kafka_bootstrap, tenant, f"until-{uuid.uuid4().hex[:8]}")
    await customer.responded(uuid.uuid4(), uuid.uuid4(), 9)
    now = datetime.now(UTC)
    later, earlier = (now + timedelta(days=1)).isoformat(), (now - timedelta(days=1)).isoformat()

    async def answered() -> bool:
        return bool((await get(reporting, tenant, "/v1/reports/summary", until=later))["responses"] == 1)

    await eventually(answered, within=15)
    assert (await get(reporting, tenant, "/v1/reports/summary", until=earlier))["responses"] == 0
    assert (await get(reporting, tenant, "/v1/reports/responses", until=earlier))["responses"] == []
    assert len((await get(reporting, tenant, "/v1/reports/responses", until=later))["responses"]) == 1
    assert (await get(reporting, tenant, "/v1/reports/followups", until=earlier))["cases"] == 0
