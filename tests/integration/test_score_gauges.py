"""The score per touchpoint on scoring's /metrics: summed over tenants by default, per tenant when
METRICS_TENANT_LABELS is on."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.scoring.config import ScoringSettings
from services.scoring.main import build
from tests.conftest import (
    ServiceUnderTest,
    StartService,
    TestTenant,
    eventually,
    provision_tenant,
)
from tests.integration.test_scoring_nps import answer, send

pytestmark = pytest.mark.integration

SCORES = (9, 10, 10, 3, 7)  # 3 promoters, 1 passive, 1 detractor: NPS 40


async def _answered(
    service: ServiceUnderTest, kafka_bootstrap: str, tenant: TestTenant, touchpoint: str
) -> None:
    for score in SCORES:
        await send(kafka_bootstrap, answer(tenant, touchpoint, score, f"c-{uuid.uuid4().hex[:8]}"))


@pytest.mark.parametrize("by_tenant", [False, True], ids=["summed", "per-tenant"])
async def test_the_nps_and_answers_of_a_touchpoint_are_gauges(
    start_service: StartService, kafka_bootstrap: str, by_tenant: bool
) -> None:
    scoring = await start_service(
        build, ScoringSettings, fresh=True, metrics_tenant_labels=by_tenant, metrics_refresh_seconds=0.2
    )
    tenant = await provision_tenant(scoring.runtime)
    touchpoint = f"gauge-{uuid.uuid4().hex[:8]}"
    await _answered(scoring, kafka_bootstrap, tenant, touchpoint)
    labels = {"tenant": tenant.tenant_id if by_tenant else "all", "touchpoint": touchpoint}

    async def shown() -> dict[str, float] | None:
        # One scrape for all four: the gauges are process-wide, and the session's shared scoring
        # refreshes them too, so two scrapes could straddle its refresh.
        found: dict[str, float] = {}
        text = (await scoring.client.get("/metrics")).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if all(sample.labels.get(key) == value for key, value in labels.items()):
                    if sample.name == "nps_scoring_answers":
                        found[sample.labels["category"]] = sample.value
                    elif sample.name == "nps_scoring_nps":
                        found["nps"] = sample.value
        answers = sum(found.get(category, 0) for category in ("promoter", "passive", "detractor"))
        return found if answers == len(SCORES) and "nps" in found else None

    shown_once = await eventually(shown, within=60)
    assert shown_once == {"promoter": 3, "passive": 1, "detractor": 1, "nps": pytest.approx(40.0)}
