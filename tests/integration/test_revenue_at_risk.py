"""Revenue at risk end to end: answers with a 12-month spend snapshot in on Kafka, through the real
scoring (cells and their spend, ``nps.updated``) and reporting (``reporting.nps_cells``), out over
HTTP as the detractors' and passives' spend x the tenant's churn probabilities, per currency,
touchpoint and country; a revision moves the spend, and another tenant sees none of it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from libs.common.events import (
    SURVEY_RESPONDED,
    SURVEY_RESPONSE_UPDATED,
    Contract,
    Event,
    Money,
    SurveyContext,
    SurveyResponded,
    SurveyResponseUpdated,
    new_event,
)
from services.reporting.config import ReportingSettings
from services.reporting.main import build as build_reporting
from services.scoring.config import ScoringSettings
from services.scoring.main import build as build_scoring
from tests.conftest import ServiceUnderTest, StartService, TestTenant, eventually, provision_tenant
from tests.integration.test_scoring_segments import send

pytestmark = pytest.mark.integration


def answer(
    tenant: TestTenant,
    response_id: uuid.UUID,
    touchpoint: str,
    score: int,
    country: str,
    spend: list[tuple[str, int]],
    revision: int = 1,
) -> Event[Contract]:
    customer = f"c-{response_id.hex[:12]}"
    common = {
        "response_id": response_id,
        "invitation_id": uuid.uuid5(response_id, "invitation"),
        "customer_id": customer,
        "touchpoint": touchpoint,
        "score": score,
        "responded_at": datetime.now(UTC),
        "context": SurveyContext(
            attributes={"country": country},
            spend_12m=[Money(amount_minor=amount, currency=code) for code, amount in spend] or None,
        ),
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


async def revenue(reporting: ServiceUnderTest, tenant: TestTenant, **params: str) -> dict[str, Any]:
    response = await reporting.client.get("/v1/reports/revenue", headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def at_risk(currencies: list[dict[str, Any]]) -> dict[str, tuple[int, int, str]]:
    """Per currency: (detractors' spend, passives' spend, revenue at risk in major units)."""
    return {
        each["currency"]: (
            each["detractor_spend_minor"],
            each["passive_spend_minor"],
            each["revenue_at_risk"],
        )
        for each in currencies
    }


async def test_revenue_at_risk_per_touchpoint_and_country_moves_with_a_revision(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    scoring = await start_service(build_scoring, ScoringSettings)
    reporting = await start_service(build_reporting, ReportingSettings)
    tenant = await provision_tenant(scoring.runtime, reporting.runtime)
    other = await provision_tenant(scoring.runtime, reporting.runtime)
    settings = await reporting.client.get("/v1/reports/settings", headers=tenant.headers)
    assert settings.json() == {"churn_probability": {"detractor": 0.3, "passive": 0.0}, "updated_at": None}
    for field, value in (("detractor", 1.5), ("passive", -0.1)):
        refused = await reporting.client.put(
            "/v1/reports/settings", json={"churn_probability": {field: value}}, headers=tenant.headers
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["problems"][0]["field"] == f"body.churn_probability.{field}"
    put = await reporting.client.put(
        "/v1/reports/settings",
        json={"churn_probability": {"detractor": 0.25, "passive": 0.5}},
        headers=tenant.headers,
    )
    assert put.status_code == 200, put.text
    assert (
        await reporting.client.put("/v1/reports/settings", json={"churn_probability": {}})
    ).status_code == 401

    shop, support = f"checkout-{uuid.uuid4().hex[:8]}", f"support-{uuid.uuid4().hex[:8]}"
    first = uuid.uuid4()
    await send(
        kafka_bootstrap,
        answer(tenant, first, shop, 3, "DK", [("DKK", 100_000)]),
        answer(tenant, uuid.uuid4(), shop, 2, "SE", [("DKK", 50_000), ("EUR", 2_000)]),
        answer(tenant, uuid.uuid4(), shop, 7, "DK", [("DKK", 40_000)]),
        answer(tenant, uuid.uuid4(), shop, 1, "DK", []),
        answer(tenant, uuid.uuid4(), support, 9, "DK", [("DKK", 999_999)]),
        answer(tenant, uuid.uuid4(), support, 5, "DK", [("EUR", 10_000)]),
    )

    async def reckoned(dkk_detractors: int, detractors: int = 4) -> dict[str, Any] | None:
        # Every cell of the answers in, each touchpoint's and each country's, not only some of them.
        body = await revenue(reporting, tenant, dimension="country")
        found = at_risk(body["currencies"])
        complete = found.get("DKK", (0,))[0] == dkk_detractors and found.get("EUR", (0,))[0] == 12_000
        by_country = sum(row["answers"]["detractors"] for row in body["segments"])
        counted = [body["answers"]["detractors"], by_country]
        return body if complete and counted == [detractors, detractors] else None

    body = await eventually(lambda: reckoned(150_000))
    assert body["churn_probability"] == {"detractor": 0.25, "passive": 0.5}
    # 1500.00 x 0.25 + 400.00 x 0.5, and 120.00 x 0.25: two currencies, never added together.
    assert at_risk(body["currencies"]) == {"DKK": (150_000, 40_000, "575.00"), "EUR": (12_000, 0, "30.00")}
    assert body["currencies"][0]["detractor_spend"] == "1500.00"
    touchpoints = {row["touchpoint"]: at_risk(row["currencies"]) for row in body["touchpoints"]}
    assert touchpoints == {
        shop: {"DKK": (150_000, 40_000, "575.00"), "EUR": (2_000, 0, "5.00")},
        support: {"DKK": (0, 0, "0.00"), "EUR": (10_000, 0, "25.00")},
    }
    countries = {row["value"]: at_risk(row["currencies"]) for row in body["segments"]}
    assert countries == {
        "DK": {"DKK": (100_000, 40_000, "450.00"), "EUR": (10_000, 0, "25.00")},
        "SE": {"DKK": (50_000, 0, "125.00"), "EUR": (2_000, 0, "5.00")},
    }
    # The answers counted, with a snapshot or not (the DK detractor of the shop has none).
    assert body["answers"] == {"detractors": 4, "passives": 1}
    assert {row["touchpoint"]: row["answers"] for row in body["touchpoints"]} == {
        shop: {"detractors": 3, "passives": 1},
        support: {"detractors": 1, "passives": 0},
    }
    assert {row["value"]: row["answers"] for row in body["segments"]} == {
        "DK": {"detractors": 3, "passives": 1},
        "SE": {"detractors": 1, "passives": 0},
    }
    only_dk = await revenue(reporting, tenant, segment="country:DK", touchpoint=shop)
    assert at_risk(only_dk["currencies"]) == {"DKK": (100_000, 40_000, "450.00")}
    assert only_dk["answers"] == {"detractors": 2, "passives": 1}
    assert [row["answers"] for row in only_dk["touchpoints"]] == [{"detractors": 2, "passives": 1}]

    # The first detractor changes its mind: 3 -> 9 takes its 1000.00 DKK out of the risk.
    await send(kafka_bootstrap, answer(tenant, first, shop, 9, "DK", [("DKK", 100_000)], revision=2))
    body = await eventually(lambda: reckoned(50_000, detractors=3))
    assert at_risk(body["currencies"])["DKK"] == (50_000, 40_000, "325.00")

    nothing = await revenue(reporting, other, dimension="country")
    assert (nothing["currencies"], nothing["touchpoints"], nothing["segments"]) == ([], [], [])
    both = await reporting.client.get(
        "/v1/reports/revenue",
        headers=tenant.headers,
        params={"dimension": "country", "segment": "country:DK"},
    )
    assert both.status_code == 422 and both.json()["problems"][0]["field"] == "query.dimension"
