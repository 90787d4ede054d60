"""The export's faults, as the caller sees them: a service that cannot answer makes a 503 naming
it, never a partial export presented as complete; an unknown customer is a 404."""

from __future__ import annotations

import uuid

from libs.devstack.ports import free_port
from tests.conftest import StartService
from tests.support.factories import purchase
from tests.support.services import trigger_with_tenant


async def test_a_service_that_is_down_makes_a_503_naming_it(start_service: StartService) -> None:
    # Nothing listens on these ports: the survey, asked first, is the one named.
    down = {f"{name}_api_url": f"http://127.0.0.1:{free_port()}" for name in ("survey", "scoring")}
    trigger, tenant = await trigger_with_tenant(start_service, **down, export_timeout_seconds=2.0)
    customer = f"c-{uuid.uuid4().hex[:8]}"
    posted = await trigger.client.post("/v1/events", json=purchase(customer), headers=tenant.headers)
    assert posted.status_code == 202

    response = await trigger.client.get(f"/v1/customers/{customer}/export", headers=tenant.headers)

    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "service_unavailable" and "survey" in body["detail"]
    assert body["problems"] == [{"field": "survey", "message": "unreachable"}]
    assert "trigger" not in body and customer not in response.text


async def test_an_export_without_a_key_is_refused(start_service: StartService) -> None:
    trigger, _ = await trigger_with_tenant(start_service)
    response = await trigger.client.get("/v1/customers/anyone/export")
    assert response.status_code == 401
