"""Two survey replicas against one database hold one tenant's sending rate and one client's public
limits between them, not twice them (real Postgres, broker and SMTP sink; a new tenant's defaults)."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import httpx

from libs.common.app import create_app
from libs.devstack.smtp_sink import arrivals_to
from services.survey.config import SurveySettings
from services.survey.main import build as build_survey
from services.trigger.config import TriggerSettings
from services.trigger.main import build as build_trigger
from tests.conftest import Mailbox, ServiceUnderTest, StartService, eventually, provision_tenant
from tests.integration.test_survey_flow import SECRET
from tests.support.factories import purchase

#: A new tenant's sending rate (600 a minute) and its burst (a tenth of a minute's worth).
RATE_PER_SECOND = 10.0
BURST = 100
#: How late the first email may arrive after its slot, on a slow machine, without a later one
#: seeming early.
LATE_S = 1.5


async def _two_replicas(start_service: StartService) -> tuple[ServiceUnderTest, ServiceUnderTest]:
    """Two survey processes' worth of runtime (each its own sender, pool and consumer), one group."""
    group = f"test-{uuid.uuid4().hex[:12]}"

    async def replica() -> ServiceUnderTest:
        return await start_service(
            build_survey,
            SurveySettings,
            fresh=True,
            kafka_group_prefix=group,
            survey_token_secret=SECRET,
            survey_public_url="http://testserver",
            send_poll_seconds=0.05,
        )

    return await replica(), await replica()


async def test_two_replicas_send_a_burst_at_the_tenants_rate_not_twice_it(
    start_service: StartService, smtp_sink: Mailbox
) -> None:
    trigger = await start_service(build_trigger, TriggerSettings)
    first, second = await _two_replicas(start_service)
    tenant = await provision_tenant(trigger.runtime, first.runtime)
    size = 300
    burst = [
        purchase(f"c-{n}", event_id=f"order-{n}-paid", order_id=str(n), email=f"c-{n}@{tenant.name}.example")
        for n in range(size)
    ]
    posted = await trigger.client.post("/v1/events", json=burst, headers=tenant.headers)
    assert [r.get("decision") for r in posted.json()["results"]] == ["invited"] * size

    async def all_sent() -> int | None:
        response = await second.client.get(
            "/v1/invitations", params={"status": "sent", "limit": 1000}, headers=tenant.headers
        )
        sent = len(response.json()["invitations"])
        return sent if sent == size else None

    # 100 at once, then 10 a second: about 20 seconds; twice the rate would take 5.
    await eventually(all_sent, within=120)
    failed = await first.client.get("/v1/invitations", params={"status": "failed"}, headers=tenant.headers)
    # Waiting is not failing: every invitation the rate held back went at its slot.
    assert failed.json()["invitations"] == []

    arrivals = arrivals_to(smtp_sink.directory, f"@{tenant.name}.example")
    assert len(arrivals) == size
    assert len({to for _, to in arrivals}) == size, "an invitation was sent twice"
    start = arrivals[0][0]
    # By t seconds after the first email, at most the burst plus the rate's t seconds' worth have
    # arrived: both replicas together, not each. Twice the rate puts 200 in the first second.
    too_early = [
        (n + 1, round((at - start).total_seconds(), 2))
        for n, (at, _) in enumerate(arrivals)
        if (at - start).total_seconds() < (n + 1 - BURST) / RATE_PER_SECOND - LATE_S
    ]
    assert too_early == [], f"(emails, seconds after the first) over the tenant's rate: {too_early[:5]}"


async def _guesses(replica: ServiceUnderTest, address: str, count: int) -> list[int]:
    transport = httpx.ASGITransport(app=create_app(replica.runtime), client=(address, 43210))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return [(await client.get(f"/s/{secrets.token_urlsafe(32)}")).status_code for _ in range(count)]


async def test_a_client_guessing_links_across_two_replicas_gets_the_misses_of_one(
    start_service: StartService,
) -> None:
    first, second = await _two_replicas(start_service)
    guesser = f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
    statuses: list[Any] = []
    for _ in range(10):
        statuses += await _guesses(first, guesser, 2)
        statuses += await _guesses(second, guesser, 2)
    # Ten misses a minute per client, wherever they land: a person mistypes a few, a guesser is
    # stopped; each replica on its own would have let through ten each.
    misses = statuses.count(404)
    assert statuses.count(429) == len(statuses) - misses
    assert 10 <= misses <= 11, statuses
