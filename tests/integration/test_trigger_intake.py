"""The trigger against real Postgres and a real Kafka broker: intake over HTTP and Kafka,
dedupe, the rest period, the DLQ, and a service restart."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from libs.common import topics
from libs.common.events import SURVEY_REQUESTED
from services.trigger.config import TriggerSettings
from services.trigger.main import build
from tests.conftest import (
    ServiceUnderTest,
    StartService,
    TestTenant,
    eventually,
    metric_value,
    produce,
    read_dead_letters,
    read_topic,
)
from tests.support.factories import purchase
from tests.support.services import decisions, trigger_with_tenant


def is_request_for(customer: str) -> Any:
    def match(record: Any) -> bool:
        body = json.loads(record.value)
        return bool(body["type"] == SURVEY_REQUESTED and body["data"]["customer_id"] == customer)

    return match


async def test_a_purchase_posted_over_http_requests_a_survey(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex}"
    response = await service.client.post("/v1/events", json=purchase(customer), headers=tenant.headers)
    assert response.status_code == 202
    [result] = response.json()["results"]
    assert (result["status"], result["decision"]) == ("accepted", "invited")

    [record] = await read_topic(
        service.runtime.settings.kafka_bootstrap_servers, topics.SURVEY_REQUESTS, is_request_for(customer)
    )
    body = json.loads(record.value)
    assert body["tenantid"] == tenant.tenant_id
    assert body["data"]["invitation_id"] == result["invitation_id"]
    assert record.key == customer.encode()


async def test_a_second_purchase_inside_the_rest_period_is_skipped_and_recorded(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex}"
    first = await service.client.post("/v1/events", json=purchase(customer), headers=tenant.headers)
    second = await service.client.post("/v1/events", json=purchase(customer), headers=tenant.headers)
    assert first.json()["results"][0]["decision"] == "invited"
    assert second.json()["results"][0] | {"id": None} == {
        "id": None,
        "status": "accepted",
        "decision": "skipped",
        "reason": "rest_period",
        "touchpoint": "webshop-purchase",
    }
    history = await decisions(service, tenant, customer)
    assert [(d["outcome"], d["reason"]) for d in history] == [("skipped", "rest_period"), ("invited", None)]
    assert history[0]["rest_period_days"] == 180


async def test_the_same_event_twice_gives_one_invitation(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex}"
    event = purchase(customer, tenant=tenant.tenant_id)
    bootstrap = service.runtime.settings.kafka_bootstrap_servers
    # Once over HTTP, twice over Kafka: three deliveries of one event.
    await service.client.post("/v1/events", json=event, headers=tenant.headers)
    for _ in range(2):
        await produce(bootstrap, topics.PURCHASES, json.dumps(event).encode(), key=customer.encode())
    marker = purchase(customer, tenant=tenant.tenant_id)
    await produce(bootstrap, topics.PURCHASES, json.dumps(marker).encode(), key=customer.encode())
    # The marker comes after the repeats in the same partition, so once it is decided they were too.
    await eventually(lambda: _has_decision(service, tenant, customer, marker["id"]))
    assert len(await decisions(service, tenant, customer)) == 2
    records = await read_topic(bootstrap, topics.SURVEY_REQUESTS, is_request_for(customer))
    assert len(records) == 1


async def _has_decision(service: ServiceUnderTest, tenant: TestTenant, customer: str, event_id: str) -> bool:
    return any(d["event_id"] == event_id for d in await decisions(service, tenant, customer))


async def test_binary_mode_cloudevents_on_kafka_are_accepted(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex}"
    event = purchase(customer, tenant=tenant.tenant_id)
    data = event.pop("data")
    headers = [(f"ce_{name}", str(value).encode()) for name, value in event.items()]
    await produce(
        service.runtime.settings.kafka_bootstrap_servers,
        topics.PURCHASES,
        json.dumps(data).encode(),
        key=customer.encode(),
        headers=headers,
    )
    await eventually(lambda: _has_decision(service, tenant, customer, event["id"]))


@pytest.mark.parametrize(
    ("label", "payload", "reason", "code"),
    [
        ("not json", b"{this is not json", "not valid JSON", "undecodable"),
        (
            "unknown type",
            b'{"specversion":"1.0","id":"x","source":"/s","type":"order.shipped.v1","tenantid":"T",'
            b'"data":{}}',
            "unknown event type",
            "unknown_type",
        ),
        (
            "missing customer",
            b'{"specversion":"1.0","id":"x","source":"/s","type":"purchase.completed.v1",'
            b'"tenantid":"T","data":{"order_id":"1"}}',
            "data.customer_id",
            "invalid_data",
        ),
        (
            "unknown tenant",
            b'{"specversion":"1.0","id":"x","source":"/s","type":"purchase.completed.v1",'
            b'"tenantid":"00000000-0000-4000-8000-000000000000","data":{"order_id":"1",'
            b'"customer_id":"c"}}',
            "unknown tenant",
            "unknown_tenant",
        ),
    ],
)
async def test_poison_messages_go_to_the_dlq_with_a_reason_and_intake_carries_on(
    start_service: StartService, label: str, payload: bytes, reason: str, code: str
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    bootstrap = service.runtime.settings.kafka_bootstrap_servers
    counted = {"topic": topics.PURCHASES, "reason": code}
    before = await metric_value(service.client, "nps_trigger_dead_lettered_messages_total", **counted)
    marker = uuid.uuid4().hex.encode()
    await produce(
        bootstrap, topics.PURCHASES, payload.replace(b'"T"', f'"{tenant.tenant_id}"'.encode()), key=marker
    )
    customer = f"c-{uuid.uuid4().hex}"
    good = purchase(customer, tenant=tenant.tenant_id)
    await produce(bootstrap, topics.PURCHASES, json.dumps(good).encode(), key=marker)

    [dead] = await read_dead_letters(
        bootstrap,
        service.runtime.database.engine,
        topics.dlq(topics.PURCHASES),
        lambda r: r.key == marker and r.headers["nps-dlq-consumer"] == b"nps.trigger.intake",
    )
    headers = dead.headers
    assert reason in headers["nps-dlq-reason"].decode(), label
    assert headers["nps-dlq-topic"] == topics.PURCHASES.encode()
    assert headers["nps-dlq-code"] == code.encode()
    assert dead.value == payload.replace(b'"T"', f'"{tenant.tenant_id}"'.encode())
    await eventually(lambda: _has_decision(service, tenant, customer, good["id"]))
    after = await metric_value(service.client, "nps_trigger_dead_lettered_messages_total", **counted)
    assert after >= before + 1


async def test_bad_http_input_gets_a_4xx_naming_the_problem(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    post = service.client.post
    too_many = [purchase(f"c{i}") for i in range(1001)]
    cases = [
        (await post("/v1/events", json=too_many, headers=tenant.headers), 413, "1001 events"),
        (await post("/v1/events", content=b"{not json", headers=tenant.headers), 400, "not valid JSON"),
        (await post("/v1/events", content=b"x" * (6 * 1024 * 1024), headers=tenant.headers), 413, "exceeds"),
        (
            await post(
                "/v1/events", json={**purchase("c"), "type": "order.shipped.v1"}, headers=tenant.headers
            ),
            422,
            "unknown event type",
        ),
        (
            await post(
                "/v1/events", json={**purchase("c"), "data": {"order_id": "1"}}, headers=tenant.headers
            ),
            422,
            "data.customer_id",
        ),
        (
            await post("/v1/events", json=purchase("c"), headers={"Authorization": "Bearer nps_0_wrong"}),
            401,
            "API key",
        ),
        (await post("/v1/events", json=purchase("c")), 401, "missing API key"),
        (
            await post(
                "/v1/events", json={**purchase("c"), "tenantid": str(uuid.uuid4())}, headers=tenant.headers
            ),
            422,
            "tenantid",
        ),
        (await post("/v1/events", json=[], headers=tenant.headers), 422, "empty"),
        (await post("/v1/events", json="just a string", headers=tenant.headers), 422, "CloudEvent object"),
    ]
    for response, status, text in cases:
        assert response.status_code == status, response.text
        assert text in json.dumps(response.json()), response.text
    # An SQL-looking customer id is only data.
    hostile = "c'; DROP TABLE trigger.decisions; --"
    response = await post("/v1/events", json=purchase(hostile), headers=tenant.headers)
    assert response.json()["results"][0]["decision"] == "invited"
    assert (await decisions(service, tenant, hostile))[0]["outcome"] == "invited"


async def test_a_mixed_batch_reports_each_event(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex}"
    batch = [purchase(customer), purchase(customer), purchase(f"{customer}-2", email=None), {"id": "broken"}]
    response = await service.client.post("/v1/events", json=batch, headers=tenant.headers)
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (3, 0, 1)
    assert [r.get("decision", r["status"]) for r in body["results"]] == [
        "invited",
        "skipped",
        "skipped",
        "rejected",
    ]
    assert body["results"][2]["reason"] == "no_email"
    assert "specversion" in body["results"][3]["error"]


async def test_tenants_do_not_see_each_other(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    _, other = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex}"
    event = purchase(customer)
    posted = await service.client.post("/v1/events", json=event, headers=tenant.headers)
    assert posted.status_code == 202
    [owned] = await decisions(service, tenant, customer)
    assert (owned["event_id"], owned["outcome"]) == (event["id"], "invited")
    assert await decisions(service, other, customer) == []
    # The other tenant's own purchase by the same customer id is its own: a first invitation,
    # not a rest period started by the first tenant.
    theirs = await service.client.post("/v1/events", json=purchase(customer), headers=other.headers)
    assert theirs.json()["results"][0]["decision"] == "invited"
    assert [d["event_id"] for d in await decisions(service, tenant, customer)] == [event["id"]]


async def test_the_admin_api_creates_tenants_and_keys_and_refuses_without_the_token(
    start_service: StartService,
) -> None:
    service = await start_service(build, TriggerSettings)
    token = service.runtime.settings.admin_token.get_secret_value()
    name = f"acme-{uuid.uuid4().hex[:6]}"
    refused = await service.client.post("/v1/admin/tenants", json={"name": name})
    assert refused.status_code == 401
    created = await service.client.post(
        "/v1/admin/tenants", json={"name": name}, headers={"X-Admin-Token": token}
    )
    assert created.status_code == 201
    again = await service.client.post(
        "/v1/admin/tenants", json={"name": name}, headers={"X-Admin-Token": token}
    )
    assert again.status_code == 409
    key = await service.client.post(f"/v1/admin/tenants/{name}/api-keys", headers={"X-Admin-Token": token})
    assert key.status_code == 201
    headers = {"Authorization": f"Bearer {key.json()['api_key']}"}
    assert (await service.client.get("/v1/policy", headers=headers)).json() == {
        "rest_period_days": 180,
        "rest_clock": "invitation",
    }
    revoked = await service.client.delete(
        f"/v1/admin/api-keys/{key.json()['key_id']}", headers={"X-Admin-Token": token}
    )
    assert revoked.status_code == 204
    # A fresh verifier has no cache: the revoked key no longer opens anything.
    service.runtime.verifier._cache.clear()
    assert (await service.client.get("/v1/policy", headers=headers)).status_code == 401


async def test_unknown_routes_and_methods_get_json_4xx(start_service: StartService) -> None:
    service = await start_service(build, TriggerSettings)
    missing = await service.client.get("/v1/nope")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    wrong_method = await service.client.delete("/v1/events")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")
