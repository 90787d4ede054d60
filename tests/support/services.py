"""Services under test with what a test needs of them: a running trigger with a fresh tenant and key,
and the calls to its events and decisions APIs that tests make again and again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from services.trigger import handlers
from services.trigger.config import TriggerSettings
from services.trigger.main import build
from tests.conftest import ServiceUnderTest, StartService, TestTenant


async def trigger_with_tenant(
    start_service: StartService, **overrides: Any
) -> tuple[ServiceUnderTest, TestTenant]:
    """The trigger (started with the settings ``overrides``; the same ones share one service) and a
    new tenant with an API key, made by the handlers the admin API and the CLI call."""
    service = await start_service(build, TriggerSettings, **overrides)
    name = f"shop-{uuid.uuid4().hex[:8]}"
    async with service.runtime.database.uow() as uow:
        tenant_id = await handlers.create_tenant(
            uow, name=name, owner_email=f"cx@{name}.example", now=datetime.now(UTC)
        )
        _, key = await handlers.create_api_key(uow, tenant=name, now=datetime.now(UTC))
        await uow.commit()
    return service, TestTenant(str(tenant_id), name, key.secret, f"cx@{name}.example")


async def post_events(service: ServiceUnderTest, tenant: TestTenant, body: Any) -> dict[str, Any]:
    """``POST /v1/events`` (one event or a list), which must be accepted; the whole answer."""
    response = await service.client.post("/v1/events", json=body, headers=tenant.headers)
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


async def post_event(service: ServiceUnderTest, tenant: TestTenant, event: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/events`` of one event; its result (status, decision, reason...)."""
    [result] = (await post_events(service, tenant, event))["results"]
    return result  # type: ignore[no-any-return]


async def decisions(service: ServiceUnderTest, tenant: TestTenant, customer: str) -> list[dict[str, Any]]:
    """``GET /v1/decisions`` of one customer, newest first."""
    response = await service.client.get(
        "/v1/decisions", params={"customer": customer}, headers=tenant.headers
    )
    assert response.status_code == 200
    return response.json()["decisions"]  # type: ignore[no-any-return]
