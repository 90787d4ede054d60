"""The score per touchpoint on scoring's /metrics: summed over tenants by default, per tenant when
METRICS_TENANT_LABELS is on."""

from __future__ import annotations

import uuid

import pytest

from services.scoring.config import ScoringSettings
from services.scoring.main import build
from tests.conftest import (
    ServiceUnderTest,
    StartService,
    TestTenant,
    eventually,
    metric_value,
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
        found = {
            category: await metric_value(scoring.client, "nps_scoring_answers", category=category, **labels)
            for category in ("promoter", "passive", "detractor")
        }
        return found if sum(found.values()) == len(SCORES) else None

    assert await eventually(shown, within=60) == {"promoter": 3, "passive": 1, "detractor": 1}
    assert await metric_value(scoring.client, "nps_scoring_nps", **labels) == pytest.approx(40.0)
