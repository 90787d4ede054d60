"""A burst at the tenant's sending rate: everything is sent, nothing fails, and what does fail is
visible where a tenant and an operator look (the invitation API, the metric, the event)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY

from libs.common import topics
from libs.common.events import SURVEY_FAILED
from services.survey.config import SurveySettings
from services.survey.main import build as build_survey
from services.trigger.config import TriggerSettings
from services.trigger.main import build as build_trigger
from tests.conftest import Mailbox, StartService, eventually, provision_tenant, read_topic
from tests.integration.test_survey_flow import SECRET, mail_to, request_survey, unique_address
from tests.support.factories import purchase


async def _services(start_service: StartService) -> Any:
    trigger = await start_service(build_trigger, TriggerSettings)
    # Tenant defaults throughout: the sending rate is the new tenant's 600 a minute.
    survey = await start_service(
        build_survey,
        SurveySettings,
        survey_token_secret=SECRET,
        survey_public_url="http://testserver",
        send_poll_seconds=0.05,
    )
    return trigger, survey


async def test_a_burst_of_purchases_at_the_default_rate_is_all_sent_and_none_failed(
    start_service: StartService, smtp_sink: Mailbox
) -> None:
    trigger, survey = await _services(start_service)
    tenant = await provision_tenant(trigger.runtime, survey.runtime)
    burst = [
        purchase(f"c-{n}", event_id=f"order-{n}-paid", order_id=str(n), email=f"c-{n}@{tenant.name}.example")
        for n in range(200)
    ]

    posted = await trigger.client.post("/v1/events", json=burst, headers=tenant.headers)
    assert posted.status_code == 202
    assert [r.get("decision") for r in posted.json()["results"]] == ["invited"] * 200

    async def all_sent() -> dict[str, int] | None:
        response = await survey.client.get(
            "/v1/invitations", params={"status": "sent", "limit": 1000}, headers=tenant.headers
        )
        sent = len(response.json()["invitations"])
        return {"sent": sent} if sent == 200 else None

    # 100 at once, then 10 a second: about ten seconds. Before, a third of them failed for good.
    await eventually(all_sent, within=60)
    failed = await survey.client.get("/v1/invitations", params={"status": "failed"}, headers=tenant.headers)
    assert failed.json()["invitations"] == []
    delivered = [m for m in mail_to(smtp_sink.directory, f"@{tenant.name}.example")]
    assert len(delivered) == 200
    assert len({str(m["To"]) for m in delivered}) == 200


def _failed_metric(reason: str) -> float:
    value = REGISTRY.get_sample_value("nps_survey_invitations_failed_total", {"reason": reason})
    return value or 0.0


async def test_a_failed_invitation_is_listed_counted_and_announced_with_its_reason(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    _, survey = await _services(start_service)
    tenant = await provision_tenant(survey.runtime)
    customer, address = f"c-{uuid.uuid4().hex}", unique_address()
    before = _failed_metric("expired")
    invitation_id = await request_survey(
        kafka_bootstrap,
        tenant,
        customer=customer,
        email=address,
        send_at=datetime.now(UTC) - timedelta(days=31),
    )

    async def listed() -> list[dict[str, Any]]:
        response = await survey.client.get(
            "/v1/invitations", params={"status": "failed"}, headers=tenant.headers
        )
        return response.json()["invitations"]  # type: ignore[no-any-return]

    [failed] = await eventually(listed)
    assert (failed["invitation_id"], failed["failure_reason"]) == (str(invitation_id), "expired")
    assert failed["last_error"] == "expired before it could be sent"
    assert _failed_metric("expired") == before + 1
    [record] = await read_topic(
        kafka_bootstrap,
        topics.SURVEY_EVENTS,
        lambda r: b"survey.failed.v1" in r.value and str(invitation_id).encode() in r.value,
    )
    event = json.loads(record.value)
    assert event["type"] == SURVEY_FAILED
    assert (event["data"]["reason"], event["tenantid"]) == ("expired", tenant.tenant_id)
    assert mail_to(smtp_sink.directory, address) == []
