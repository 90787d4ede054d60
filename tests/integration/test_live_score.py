"""The live score the whole way: a customer's answer (``survey.responded.v1`` on Kafka, as the survey
announces it) and its correction, counted by scoring, on reporting's ``GET /v1/nps/stream``."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from libs.common.events import SURVEY_RESPONSE_UPDATED, SurveyResponded, SurveyResponseUpdated, new_event
from services.reporting.config import ReportingSettings
from services.reporting.main import build as build_reporting
from services.scoring.config import ScoringSettings
from services.scoring.main import build as build_scoring
from tests.conftest import StartService, provision_tenant
from tests.integration.test_reporting_insight import served
from tests.integration.test_scoring_nps import answer, send

pytestmark = pytest.mark.integration


async def day_cells(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    async for line in lines:
        if line.startswith("data: "):
            cell: dict[str, Any] = json.loads(line.removeprefix("data: "))
            if cell["window"]["bucket"] == "day":
                yield cell


async def test_an_answer_and_its_correction_show_on_the_live_stream(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    scoring = await start_service(build_scoring, ScoringSettings)
    reporting = await start_service(build_reporting, ReportingSettings)
    tenant = await provision_tenant(scoring.runtime, reporting.runtime)
    touchpoint = f"live-{uuid.uuid4().hex[:8]}"
    customer = f"customer-{uuid.uuid4().hex[:8]}"
    answered = answer(tenant, touchpoint, 3, customer)
    assert isinstance(answered.data, SurveyResponded)
    first = answered.data
    corrected = new_event(
        SURVEY_RESPONSE_UPDATED,
        tenant_id=tenant.tenant_id,
        data=SurveyResponseUpdated(
            response_id=first.response_id,
            invitation_id=first.invitation_id,
            customer_id=customer,
            touchpoint=touchpoint,
            revision=2,
            score=9,
            responded_at=first.responded_at,
            updated_at=datetime.now(UTC),
        ),
        subject=customer,
        source="/nps/survey",
    )
    async with (
        served(reporting) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
        client.stream(
            "GET", "/v1/nps/stream", headers=tenant.headers, params={"touchpoint": touchpoint}
        ) as stream,
    ):
        assert stream.status_code == 200
        cells = day_cells(stream.aiter_lines())
        await send(kafka_bootstrap, answered)
        shown = await asyncio.wait_for(anext(cells), timeout=20)
        assert shown["distribution"][3] == 1 and shown["score"]["responses"] == 1
        assert shown["score"]["detractors"] == 1 and shown["score"]["nps"] == -100.0
        await send(kafka_bootstrap, corrected)
        shown = await asyncio.wait_for(anext(cells), timeout=20)
    assert shown["distribution"][3] == 0 and shown["distribution"][9] == 1
    assert shown["score"]["responses"] == 1 and shown["score"]["nps"] == 100.0
    assert (
        shown["touchpoint"] == touchpoint
        and shown["window"]["start"] == first.responded_at.date().isoformat()
    )
