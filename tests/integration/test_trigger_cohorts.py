"""Relationship surveys by account cohort, against the real database: accounts and contacts come
from customer.upserted, the scheduler draws N accounts a period and invites their contacts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.trigger import handlers
from services.trigger.config import TriggerSettings
from services.trigger.main import build
from tests.conftest import ServiceUnderTest, StartService, TestTenant
from tests.support.services import decisions, trigger_with_tenant

NOW = datetime(2026, 3, 15, 9, 0, tzinfo=UTC)


def upsert(customer: str, account: str, email: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {"customer_id": customer, "account_id": account}
    if email:
        data["email"] = email
    return {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": "/crm",
        "type": "customer.upserted.v1",
        "subject": customer,
        "data": data,
    }


async def draw(service: ServiceUnderTest, now: datetime) -> int:
    settings = service.runtime.settings
    assert isinstance(settings, TriggerSettings)
    async with service.runtime.database.uow() as uow:
        invited = await handlers.run_cohorts(uow, now=now, settings=settings)
        await uow.commit()
    return invited


async def invited_accounts(
    service: ServiceUnderTest, tenant: TestTenant, accounts: dict[str, list[str]], period: str
) -> set[str]:
    drawn = set()
    for account, contacts in accounts.items():
        for contact in contacts:
            for decision in await decisions(service, tenant, contact):
                this_period = decision["event_id"].startswith(f"cohort:relationship-b2b:{period}:")
                if this_period and decision["outcome"] == "invited":
                    drawn.add(account)
    return drawn


async def test_two_accounts_a_month_cover_all_five_before_any_repeats(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    tag = uuid.uuid4().hex[:6]
    accounts = {f"acct-{tag}-{n}": [f"{tag}-{n}-a", f"{tag}-{n}-b"] for n in range(5)}
    events = [
        upsert(contact, account, f"{contact}@b2b.example")
        for account, contacts in accounts.items()
        for contact in contacts
    ]
    response = await service.client.post("/v1/events", json=events, headers=tenant.headers)
    assert response.json()["accepted"] == 10
    config = {"sample": {"accounts_per_period": 2, "period": "month"}, "rest_period_days": 60}
    assert (
        await service.client.put("/v1/touchpoints/relationship-b2b", json=config, headers=tenant.headers)
    ).status_code == 200
    await service.client.put("/v1/policy", json={"rest_period_days": 0}, headers=tenant.headers)

    assert await draw(service, NOW) == 4  # two accounts, two contacts each
    assert await draw(service, NOW + timedelta(days=3)) == 0  # the month's draw is done
    march = await invited_accounts(service, tenant, accounts, "2026-03")
    assert len(march) == 2

    assert await draw(service, NOW + timedelta(days=31)) == 4
    april = await invited_accounts(service, tenant, accounts, "2026-04")
    assert len(april) == 2 and not april & march

    await draw(service, NOW + timedelta(days=61))
    may = await invited_accounts(service, tenant, accounts, "2026-05")
    # The fifth account finishes round one; a second account starts round two, and it is one that
    # is out of its 60-day touchpoint rest period (March's, not April's).
    assert set(accounts) - march - april <= may
    assert len(may) == 2 and not may & april


async def test_accounts_whose_contacts_may_not_be_asked_wait(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    tag = uuid.uuid4().hex[:6]
    events = [
        upsert(f"{tag}-ok", f"ok-{tag}", f"ok-{tag}@b2b.example"),
        upsert(f"{tag}-noemail", f"noemail-{tag}", None),
        upsert(f"{tag}-gone", f"gone-{tag}", f"gone-{tag}@b2b.example"),
        {
            "specversion": "1.0",
            "id": uuid.uuid4().hex,
            "source": "/crm",
            "type": "customer.unsubscribed.v1",
            "subject": f"{tag}-gone",
            "data": {"customer_id": f"{tag}-gone"},
        },
    ]
    await service.client.post("/v1/events", json=events, headers=tenant.headers)
    await service.client.put(
        "/v1/touchpoints/relationship-b2b",
        json={"sample": {"accounts_per_period": 3, "period": "month"}},
        headers=tenant.headers,
    )
    assert await draw(service, NOW) == 1
    cohort = [d for d in await decisions(service, tenant, f"{tag}-ok") if d["event_id"].startswith("cohort:")]
    assert [d["outcome"] for d in cohort] == ["invited"]
    assert all(
        not d["event_id"].startswith("cohort:") for d in await decisions(service, tenant, f"{tag}-gone")
    )


async def test_two_replicas_drawing_at_the_same_moment_draw_the_period_once(
    start_service: StartService,
) -> None:
    first, tenant = await trigger_with_tenant(start_service)
    # Another process's worth of trigger (its own pool and jobs) on the same database.
    second = await start_service(build, TriggerSettings, fresh=True)
    tag = uuid.uuid4().hex[:6]
    accounts = {f"acct-{tag}-{n}": [f"{tag}-{n}-a", f"{tag}-{n}-b"] for n in range(6)}
    events = [
        upsert(contact, account, f"{contact}@b2b.example")
        for account, contacts in accounts.items()
        for contact in contacts
    ]
    assert (await first.client.post("/v1/events", json=events, headers=tenant.headers)).json()[
        "accepted"
    ] == 12
    config = {"sample": {"accounts_per_period": 2, "period": "month"}}
    await first.client.put("/v1/touchpoints/relationship-b2b", json=config, headers=tenant.headers)
    await first.client.put("/v1/policy", json={"rest_period_days": 0}, headers=tenant.headers)
    june = NOW + timedelta(days=80)

    await asyncio.gather(draw(first, june), draw(second, june), draw(first, june), draw(second, june))

    assert len(await invited_accounts(first, tenant, accounts, "2026-06")) == 2
    for contacts in accounts.values():
        for contact in contacts:
            invited = [
                d
                for d in await decisions(first, tenant, contact)
                if d["event_id"].startswith("cohort:") and d["outcome"] == "invited"
            ]
            assert len(invited) <= 1, f"{contact} invited {len(invited)} times"
