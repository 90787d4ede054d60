"""BigCommerce's thin order webhooks against the real trigger (Postgres, broker) and a real local
HTTP server standing in for the store's API, serving BigCommerce's published example responses.

A genuine delivery is answered at once with what was queued; the order fetcher job fetches the
order and its customer and the decision appears. Forged, stale and replayed deliveries change
nothing; a store that fails now and then is retried; one that has no such order leaves a failed
delivery with its reason; an order in a status that is not a purchase is never decided."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from standardwebhooks.webhooks import Webhook

from libs.common.service import ServiceDefinition
from services.trigger import handlers
from services.trigger.config import TriggerSettings
from services.trigger.handlers import bigcommerce as bigcommerce_handlers
from services.trigger.main import build
from tests.conftest import ServiceUnderTest, StartService, TestTenant, eventually, metric_value
from tests.support import bigcommerce_store
from tests.support.bigcommerce_store import FakeStoreApi, Store
from tests.support.services import decisions

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"
CLIENT_SECRET = "bc-client-secret-" + "0123456789abcdef"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="module")
async def store_api() -> AsyncIterator[FakeStoreApi]:
    async with bigcommerce_store.serving() as api:
        yield api


@pytest.fixture(scope="module")
async def own_database(pg_url: str) -> AsyncIterator[str]:
    """A database of its own: every trigger of the session runs the order fetcher, and one
    started with the default settings would fetch these tests' orders from api.bigcommerce.com
    (one deployment's replicas all have the same settings; a test session's triggers do not)."""
    database = f"trigger_bigcommerce_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{database}"'))
    try:
        yield make_url(pg_url).set(database=database).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        await admin.dispose()


def intake_only(settings: TriggerSettings) -> ServiceDefinition:
    """The trigger as ``build`` wires it (routes, jobs, the relay), without its Kafka consumers: on
    a database of its own they would read every other test's events as unknown tenants'."""
    return replace(build(settings), consumers=[])


async def trigger(
    start_service: StartService, store_api: FakeStoreApi, database_url: str
) -> ServiceUnderTest:
    return await start_service(
        intake_only,
        TriggerSettings,
        fresh=True,
        database_url=database_url,
        bigcommerce_api_url=store_api.url,
        outbound_allow_private=True,
    )


async def new_tenant(service: ServiceUnderTest) -> TestTenant:
    name = f"shop-{uuid.uuid4().hex[:8]}"
    async with service.runtime.database.uow() as uow:
        tenant_id = await handlers.create_tenant(
            uow, name=name, owner_email=f"cx@{name}.example", now=datetime.now(UTC)
        )
        _, key = await handlers.create_api_key(uow, tenant=name, now=datetime.now(UTC))
        await uow.commit()
    return TestTenant(str(tenant_id), name, key.secret, f"cx@{name}.example")


async def bigcommerce_receiver(
    start_service: StartService,
    store_api: FakeStoreApi,
    database_url: str,
    *,
    secret: str | None = CLIENT_SECRET,
) -> tuple[ServiceUnderTest, TestTenant, dict[str, Any], Store]:
    """The trigger pointed at the local store API, a tenant, its receiver and its store (serving the
    published example order 100, Awaiting Fulfillment, of customer 20, and order 218, Awaiting
    Payment, of customer 11)."""
    service = await trigger(start_service, store_api, database_url)
    tenant = await new_tenant(service)
    store_hash = uuid.uuid4().hex[:10]
    token = "bc-api-token-" + uuid.uuid4().hex
    store = Store(hash=store_hash, token=token)
    for name in ("bigcommerce_order_100.json", "bigcommerce_order_218.json"):
        order = fixture(name)
        store.orders[str(order["id"])] = order
    for customer_id in ("20", "11"):
        store.customers[customer_id] = fixture("bigcommerce_customers.json")
    store_api.stores[store_hash] = store
    body: dict[str, Any] = {"platform": "bigcommerce", "store_hash": store_hash, "access_token": token}
    if secret is not None:
        body["secret"] = secret
    response = await service.client.post("/v1/webhooks", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    endpoint = response.json()
    # The API token is a secret: never shown back, not even on creation.
    assert token not in response.text
    return service, tenant, endpoint, store


def delivery(name: str, order_id: int, **status: int) -> bytes:
    """A published webhook payload, for the order the store serves (and a status change's ids)."""
    payload = fixture(name)
    payload["data"]["id"] = order_id
    payload["data"].get("status", {}).update(status)
    payload["hash"] = uuid.uuid4().hex
    return json.dumps(payload).encode()


def signed(
    body: bytes, *, secret: str = CLIENT_SECRET, at: datetime | None = None, msg_id: str = ""
) -> dict[str, str]:
    """Standard Webhooks headers as BigCommerce signs: the key is the app's client secret (base64'd
    for the library, as BigCommerce's own Python sample does)."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    key = base64.b64encode(secret.encode()).decode()
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(key).sign(msg_id, at, body.decode()),
    }


async def deliveries(service: ServiceUnderTest, tenant: TestTenant, endpoint: dict[str, Any]) -> list[Any]:
    response = await service.client.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]  # type: ignore[no-any-return]


async def settled(service: ServiceUnderTest, tenant: TestTenant, endpoint: dict[str, Any]) -> list[Any]:
    """The receiver's deliveries once none is queued any more."""

    async def done() -> list[Any] | None:
        found = await deliveries(service, tenant, endpoint)
        return found if found and all(item["state"] != "queued" for item in found) else None

    return await eventually(done, within=60)  # type: ignore[no-any-return]


async def test_a_signed_order_is_answered_at_once_then_fetched_and_decided_and_a_replay_is_a_duplicate(
    start_service: StartService, store_api: FakeStoreApi, own_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    service, tenant, endpoint, store = await bigcommerce_receiver(start_service, store_api, own_database)
    assert endpoint["url_path"] == f"/v1/hooks/bigcommerce/{endpoint['id']}"
    body = delivery("bigcommerce_store_order_created.json", 100)
    headers = signed(body)
    # The store answers nothing until the delivery has been answered: a receiver that waited for
    # the order would not be answered (and its fetch would time out, a second attempt).
    store.hold = asyncio.Event()

    with caplog.at_level(logging.INFO):
        first = await service.client.post(endpoint["url_path"], content=body, headers=headers)
        assert first.status_code == 200, first.text
        assert first.json() == {
            "queued": {"id": f"bigcommerce:{headers['webhook-id']}", "order_id": "100", "status": "queued"}
        }
        store.hold.set()
        [done] = await settled(service, tenant, endpoint)
    assert store.token not in caplog.text and store.hash not in caplog.text
    assert (done["state"], done["attempts"], done["reason"]) == ("decided", 1, None)
    [decision] = await decisions(service, tenant, "20")
    assert (decision["event_id"], decision["event_type"]) == (
        f"bigcommerce:{headers['webhook-id']}",
        "purchase.completed.v1",
    )
    # The order, then its customer, with the receiver's own store.
    assert store.requests == [
        f"/stores/{store.hash}/v2/orders/100",
        f"/stores/{store.hash}/v3/customers?id:in=20",
    ]

    again = await service.client.post(endpoint["url_path"], content=body, headers=headers)
    assert again.status_code == 200
    assert again.json()["queued"]["status"] == "duplicate"
    assert len(await deliveries(service, tenant, endpoint)) == 1
    assert len(await decisions(service, tenant, "20")) == 1
    listed = await service.client.get("/v1/webhooks", headers=tenant.headers)
    assert store.token not in listed.text and CLIENT_SECRET not in listed.text


async def test_forged_stale_and_unsigned_deliveries_get_401_and_queue_nothing(
    start_service: StartService, store_api: FakeStoreApi, own_database: str
) -> None:
    service, tenant, endpoint, store = await bigcommerce_receiver(start_service, store_api, own_database)
    body = delivery("bigcommerce_store_order_created.json", 100)
    refused = {"outcome": "unauthorized", "platform": "bigcommerce"}
    before = await metric_value(service.client, "nps_trigger_webhooks_total", **refused)

    forged = await service.client.post(
        endpoint["url_path"], content=body, headers=signed(body, secret="not-the-client-secret-000")
    )
    assert (forged.status_code, forged.json()["error"]) == (401, "unauthorized")
    assert "does not match" in forged.json()["detail"]
    stale = await service.client.post(
        endpoint["url_path"], content=body, headers=signed(body, at=datetime.now(UTC) - timedelta(minutes=10))
    )
    assert stale.status_code == 401
    assert "5 minutes" in stale.json()["detail"]
    tampered_headers = signed(body)
    tampered = await service.client.post(
        endpoint["url_path"], content=body.replace(b'"id": 100', b'"id": 218'), headers=tampered_headers
    )
    assert tampered.status_code == 401
    unsigned = await service.client.post(endpoint["url_path"], content=body)
    assert unsigned.status_code == 401
    assert "webhook-signature" in unsigned.json()["detail"]
    # A right token does not rescue a wrong signature.
    both = {**signed(body, secret="not-the-client-secret-000"), "X-NPS-Webhook-Token": CLIENT_SECRET}
    assert (await service.client.post(endpoint["url_path"], content=body, headers=both)).status_code == 401

    assert await metric_value(service.client, "nps_trigger_webhooks_total", **refused) == before + 5
    assert await deliveries(service, tenant, endpoint) == []
    assert store.requests == []


async def test_a_hook_with_the_custom_token_header_is_queued_and_a_wrong_token_refused(
    start_service: StartService, store_api: FakeStoreApi, own_database: str
) -> None:
    service, tenant, endpoint, _ = await bigcommerce_receiver(
        start_service, store_api, own_database, secret=None
    )
    token = endpoint["secret"]
    body = delivery("bigcommerce_store_order_created.json", 100)
    wrong = await service.client.post(
        endpoint["url_path"], content=body, headers={"X-NPS-Webhook-Token": "x" + token}
    )
    assert wrong.status_code == 401
    right = await service.client.post(
        endpoint["url_path"], content=body, headers={"X-NPS-Webhook-Token": token}
    )
    assert right.status_code == 200, right.text
    # Without a webhook-id, the payload's hash is the delivery id: BigCommerce's retry is a duplicate.
    assert right.json()["queued"]["id"] == f"bigcommerce:{json.loads(body)['hash']}"
    replay = await service.client.post(
        endpoint["url_path"], content=body, headers={"X-NPS-Webhook-Token": token}
    )
    assert replay.json()["queued"]["status"] == "duplicate"
    [done] = await settled(service, tenant, endpoint)
    assert done["state"] == "decided"
    assert len(await decisions(service, tenant, "20")) == 1


async def test_a_store_that_fails_twice_is_retried_and_the_order_decided_once(
    start_service: StartService, store_api: FakeStoreApi, own_database: str
) -> None:
    service, tenant, endpoint, store = await bigcommerce_receiver(start_service, store_api, own_database)
    store.failures = [500, 500]
    retried = {"platform": "bigcommerce", "outcome": "retried"}
    before = await metric_value(service.client, "nps_trigger_order_fetches_total", **retried)
    body = delivery("bigcommerce_store_order_created.json", 100)
    response = await service.client.post(endpoint["url_path"], content=body, headers=signed(body))
    assert response.json()["queued"]["status"] == "queued"

    [done] = await settled(service, tenant, endpoint)
    assert (done["state"], done["attempts"]) == ("decided", 3)
    assert len(await decisions(service, tenant, "20")) == 1
    assert await metric_value(service.client, "nps_trigger_order_fetches_total", **retried) == before + 2


async def test_an_order_the_store_does_not_have_fails_with_its_reason_and_decides_nothing(
    start_service: StartService, store_api: FakeStoreApi, own_database: str
) -> None:
    service, tenant, endpoint, store = await bigcommerce_receiver(start_service, store_api, own_database)
    failed = {"platform": "bigcommerce", "outcome": "failed"}
    before = await metric_value(service.client, "nps_trigger_order_fetches_total", **failed)
    body = delivery("bigcommerce_store_order_created.json", 999_999)
    response = await service.client.post(endpoint["url_path"], content=body, headers=signed(body))
    assert response.status_code == 200

    [done] = await settled(service, tenant, endpoint)
    assert (done["state"], done["attempts"]) == ("failed", 1)
    assert "answered 404" in done["reason"] and "no such order" in done["reason"]
    assert store.token not in done["reason"]
    assert await metric_value(service.client, "nps_trigger_order_fetches_total", **failed) == before + 1
    assert await decisions(service, tenant, "20") == []


async def test_status_changes_to_statuses_that_are_not_a_purchase_never_decide(
    start_service: StartService, store_api: FakeStoreApi, own_database: str
) -> None:
    service, tenant, endpoint, store = await bigcommerce_receiver(start_service, store_api, own_database)
    # To Awaiting Payment (7): nothing to fetch.
    pending = delivery("bigcommerce_store_order_statusUpdated.json", 218, new_status_id=7)
    response = await service.client.post(endpoint["url_path"], content=pending, headers=signed(pending))
    assert response.status_code == 200
    assert "neither completes nor cancels" in response.json()["ignored"]
    assert store.requests == []

    # The published change to Awaiting Fulfillment (11), for an order that the store says is
    # Awaiting Payment now: the store's word wins.
    changed = delivery("bigcommerce_store_order_statusUpdated.json", 218)
    response = await service.client.post(endpoint["url_path"], content=changed, headers=signed(changed))
    assert response.json()["queued"]["status"] == "queued"
    [done] = await settled(service, tenant, endpoint)
    assert done["state"] == "ignored"
    assert "Awaiting Payment" in done["reason"]
    assert await decisions(service, tenant, "11") == []


async def test_a_receiver_needs_its_store_and_other_platforms_take_none(
    start_service: StartService, store_api: FakeStoreApi, own_database: str
) -> None:
    service = await trigger(start_service, store_api, own_database)
    tenant = await new_tenant(service)
    missing = await service.client.post(
        "/v1/webhooks", json={"platform": "bigcommerce", "store_hash": "abc123"}, headers=tenant.headers
    )
    assert missing.status_code == 422
    assert "access_token" in missing.text
    foreign = await service.client.post(
        "/v1/webhooks",
        json={"platform": "woocommerce", "store_hash": "abc123", "access_token": "tok-0123456789"},
        headers=tenant.headers,
    )
    assert foreign.status_code == 422


async def test_a_revoked_receivers_queued_orders_fail_unfetched_and_another_receivers_are_decided(
    start_service: StartService, store_api: FakeStoreApi, own_database: str
) -> None:
    # The fetcher polls hourly here and is woken by the test, so the deliveries wait queued while
    # the receiver is revoked: the queue a fetcher that is behind (or a store that is down) leaves.
    runs = {"job": bigcommerce_handlers.OrderFetcher.name}
    before = REGISTRY.get_sample_value("nps_trigger_job_runs_total", runs) or 0.0
    service = await start_service(
        intake_only,
        TriggerSettings,
        fresh=True,
        database_url=own_database,
        bigcommerce_api_url=store_api.url,
        outbound_allow_private=True,
        order_fetch_poll_seconds=3600,
    )
    await eventually(
        lambda: _async((REGISTRY.get_sample_value("nps_trigger_job_runs_total", runs) or 0.0) > before)
    )
    tenant = await new_tenant(service)
    revoked, revoked_store = await _receiver(service, tenant, store_api)
    kept, kept_store = await _receiver(service, tenant, store_api)
    failed = {"platform": "bigcommerce", "outcome": "failed"}
    failed_before = await metric_value(service.client, "nps_trigger_order_fetches_total", **failed)
    for endpoint in (revoked, kept):
        body = delivery("bigcommerce_store_order_created.json", 100)
        response = await service.client.post(endpoint["url_path"], content=body, headers=signed(body))
        assert response.json()["queued"]["status"] == "queued", response.text
    gone = await service.client.delete(f"/v1/webhooks/{revoked['id']}", headers=tenant.headers)
    assert gone.status_code == 204

    service.runtime.jobs.wake(bigcommerce_handlers.OrderFetcher.name)
    [done] = await settled(service, tenant, kept)
    assert done["state"] == "decided"
    assert len(await decisions(service, tenant, "20")) == 1

    async def finished() -> Any:
        async with service.runtime.database.uow() as uow:
            row = (
                await uow.session.execute(
                    text("SELECT state, attempts, reason FROM trigger.order_fetches WHERE endpoint_id = :id"),
                    {"id": revoked["id"]},
                )
            ).one()
        return row if row.state != "queued" else None

    row = await eventually(finished)
    assert (row.state, row.attempts) == ("failed", 0)
    assert "receiver revoked" in row.reason
    # The revoked receiver's store token was never used again.
    assert revoked_store.requests == []
    assert kept_store.requests[0] == f"/stores/{kept_store.hash}/v2/orders/100"
    failed_after = await metric_value(service.client, "nps_trigger_order_fetches_total", **failed)
    assert failed_after == failed_before + 1


async def _async(value: Any) -> Any:
    return value


async def _receiver(
    service: ServiceUnderTest, tenant: TestTenant, store_api: FakeStoreApi
) -> tuple[dict[str, Any], Store]:
    """One more BigCommerce receiver of ``tenant``, with a store of its own serving order 100."""
    store = Store(hash=uuid.uuid4().hex[:10], token="bc-api-token-" + uuid.uuid4().hex)
    store.orders["100"] = fixture("bigcommerce_order_100.json")
    store.customers["20"] = fixture("bigcommerce_customers.json")
    store_api.stores[store.hash] = store
    response = await service.client.post(
        "/v1/webhooks",
        json={
            "platform": "bigcommerce",
            "store_hash": store.hash,
            "access_token": store.token,
            "secret": CLIENT_SECRET,
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    endpoint: dict[str, Any] = response.json()
    return endpoint, store
