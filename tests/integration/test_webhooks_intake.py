"""Native webhooks against the real trigger (Postgres, broker): a tenant configures an endpoint,
the platform posts its real payload signed over the raw bytes, and the decision shows up; forged,
stale, replayed, foreign and hostile deliveries change nothing."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from services.trigger.adapters.common import parse_json
from tests.conftest import ServiceUnderTest, StartService, TestTenant, metric_value
from tests.support.services import decisions, trigger_with_tenant

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"


async def configure(
    service: ServiceUnderTest, tenant: TestTenant, platform: str, **body: Any
) -> dict[str, Any]:
    response = await service.client.post(
        "/v1/webhooks", json={"platform": platform, **body}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def b64_hmac(secret: str, *parts: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), b"".join(parts), hashlib.sha256).digest()).decode()


def shopify_order(**changes: Any) -> tuple[bytes, str]:
    """Shopify's published sample as a plain paid order of a new customer; ids past 2^53."""
    order = parse_json((FIXTURES / "shopify_orders_paid.json").read_bytes())
    customer_id = random.randint(2**53, 2**63)
    order.update(
        id=random.randint(2**53, 2**63),
        cancelled_at=None,
        cancel_reason=None,
        financial_status="paid",
        test=False,
        email=f"buyer-{uuid.uuid4().hex[:8]}@example.com",
    )
    order["customer"]["id"] = customer_id
    order.update(changes)
    return json.dumps(order, default=str).encode(), str(customer_id)


async def post_shopify(
    service: ServiceUnderTest,
    endpoint: dict[str, Any],
    body: bytes,
    *,
    secret: str,
    topic: str = "orders/paid",
    webhook_id: str | None = None,
) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": b64_hmac(secret, body),
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
    }
    return await service.client.post(endpoint["url_path"], content=body, headers=headers)


SHOPIFY_SECRET = "shpss_" + "0123456789abcdef" * 2


async def test_a_signed_shopify_order_is_decided_and_a_retry_is_a_duplicate(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    endpoint = await configure(service, tenant, "shopify", secret=SHOPIFY_SECRET)
    assert endpoint["url_path"] == f"/v1/hooks/shopify/{endpoint['id']}"
    assert len(endpoint["id"]) >= 22
    body, customer = shopify_order()
    webhook_id = str(uuid.uuid4())

    first = await post_shopify(service, endpoint, body, secret=SHOPIFY_SECRET, webhook_id=webhook_id)
    assert first.status_code == 200, first.text
    [result] = first.json()["results"]
    assert (result["id"], result["status"]) == (f"shopify:{webhook_id}", "accepted")
    [decision] = await decisions(service, tenant, customer)
    assert (decision["event_id"], decision["event_type"]) == (
        f"shopify:{webhook_id}",
        "purchase.completed.v1",
    )

    again = await post_shopify(service, endpoint, body, secret=SHOPIFY_SECRET, webhook_id=webhook_id)
    assert again.status_code == 200
    assert again.json()["results"][0]["status"] == "duplicate"
    assert len(await decisions(service, tenant, customer)) == 1


async def test_a_shopify_test_order_is_recorded_as_filtered(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    endpoint = await configure(service, tenant, "shopify", secret=SHOPIFY_SECRET)
    body, customer = shopify_order(test=True)
    response = await post_shopify(service, endpoint, body, secret=SHOPIFY_SECRET)
    assert response.status_code == 200, response.text
    [decision] = await decisions(service, tenant, customer)
    assert (decision["outcome"], decision["reason"]) == ("skipped", "filtered")


async def test_a_cancelled_shopify_order_is_answered_and_never_invites(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    endpoint = await configure(service, tenant, "shopify", secret=SHOPIFY_SECRET)
    body, customer = shopify_order(cancelled_at="2021-12-31T19:00:00-05:00", financial_status="voided")
    response = await post_shopify(service, endpoint, body, secret=SHOPIFY_SECRET, topic="orders/cancelled")
    assert response.status_code == 200, response.text
    assert all(d["outcome"] != "invited" for d in await decisions(service, tenant, customer))


async def test_forged_missing_and_foreign_signatures_get_401_and_change_nothing(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    endpoint = await configure(service, tenant, "shopify", secret=SHOPIFY_SECRET)
    _, other = await trigger_with_tenant(start_service)
    other_endpoint = await configure(service, other, "shopify", secret="another-tenants-secret-0123456789")
    body, customer = shopify_order()
    refused = {"outcome": "unauthorized", "platform": "shopify"}
    before = await metric_value(service.client, "nps_trigger_webhooks_total", **refused)

    forged = await post_shopify(service, endpoint, body, secret="not-the-secret-0123456789")
    assert (forged.status_code, forged.json()["error"]) == (401, "unauthorized")
    assert "does not match" in forged.json()["detail"]
    unsigned = await service.client.post(
        endpoint["url_path"], content=body, headers={"X-Shopify-Topic": "orders/paid"}
    )
    assert (unsigned.status_code, unsigned.json()["detail"]) == (401, "missing X-Shopify-Hmac-Sha256 header")
    # Another tenant's endpoint id, signed with this tenant's secret: the id does not make it ours.
    foreign = await post_shopify(service, other_endpoint, body, secret=SHOPIFY_SECRET)
    assert foreign.status_code == 401
    tampered = body.replace(b'"total_price": "404.95"', b'"total_price": "0.01"')
    changed = await service.client.post(
        endpoint["url_path"],
        content=tampered,
        headers={"X-Shopify-Topic": "orders/paid", "X-Shopify-Hmac-Sha256": b64_hmac(SHOPIFY_SECRET, body)},
    )
    assert changed.status_code == 401

    assert await decisions(service, tenant, customer) == []
    assert await decisions(service, other, customer) == []
    # Nothing was claimed either: the genuine delivery with a forged one's webhook id still counts.
    replayed_id = str(uuid.uuid4())
    await post_shopify(service, endpoint, body, secret="not-the-secret-0123456789", webhook_id=replayed_id)
    genuine = await post_shopify(service, endpoint, body, secret=SHOPIFY_SECRET, webhook_id=replayed_id)
    assert genuine.json()["results"][0]["status"] == "accepted"
    # forged, unsigned, foreign, tampered and the forged replay: five refusals counted.
    assert await metric_value(service.client, "nps_trigger_webhooks_total", **refused) == before + 5


async def test_unknown_revoked_and_wrong_platform_endpoints_are_404(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    endpoint = await configure(service, tenant, "shopify", secret=SHOPIFY_SECRET)
    body, _ = shopify_order()
    unknown = {"url_path": f"/v1/hooks/shopify/{uuid.uuid4().hex}"}
    assert (await post_shopify(service, unknown, body, secret=SHOPIFY_SECRET)).status_code == 404
    wrong_platform = {"url_path": endpoint["url_path"].replace("/shopify/", "/woocommerce/")}
    assert (await post_shopify(service, wrong_platform, body, secret=SHOPIFY_SECRET)).status_code == 404
    no_platform = {"url_path": endpoint["url_path"].replace("/shopify/", "/magento/")}
    assert (await post_shopify(service, no_platform, body, secret=SHOPIFY_SECRET)).status_code == 404

    _, other = await trigger_with_tenant(start_service)
    refused = await service.client.delete(f"/v1/webhooks/{endpoint['id']}", headers=other.headers)
    assert refused.status_code == 404
    deleted = await service.client.delete(f"/v1/webhooks/{endpoint['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    assert (await post_shopify(service, endpoint, body, secret=SHOPIFY_SECRET)).status_code == 404


async def test_hostile_bodies_with_valid_signatures(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    endpoint = await configure(service, tenant, "shopify", secret=SHOPIFY_SECRET)
    not_json = b'{"id": 1, "email": '
    response = await post_shopify(service, endpoint, not_json, secret=SHOPIFY_SECRET)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_json")
    huge = b"x" * (10 * 1024 * 1024)
    response = await post_shopify(service, endpoint, huge, secret=SHOPIFY_SECRET)
    assert (response.status_code, response.json()["error"]) == (413, "payload_too_large")
    nameless = json.dumps({"id": 5, "customer": None, "email": None}).encode()
    response = await post_shopify(service, endpoint, nameless, secret=SHOPIFY_SECRET)
    assert (response.status_code, response.json()["error"]) == (422, "invalid_payload")
    ignored = await post_shopify(service, endpoint, b"{}", secret=SHOPIFY_SECRET, topic="products/create")
    assert ignored.status_code == 200
    assert "products/create" in ignored.json()["ignored"]


async def test_woocommerce_ping_then_a_signed_guest_order(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    endpoint = await configure(service, tenant, "woocommerce")
    secret = endpoint["secret"]
    assert len(secret) >= 40
    ping = await service.client.post(
        endpoint["url_path"],
        content=b"webhook_id=17",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (ping.status_code, ping.json()) == (200, {"ignored": "ping"})

    order = json.loads((FIXTURES / "woocommerce_order_created.json").read_bytes())
    email = f"guest-{uuid.uuid4().hex[:8]}@example.com"
    order["billing"]["email"] = email
    body = json.dumps(order).encode()
    delivery = str(random.randint(1, 10**9))
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Delivery-ID": delivery,
        "X-WC-Webhook-Signature": b64_hmac(secret, body),
    }
    response = await service.client.post(endpoint["url_path"], content=body, headers=headers)
    assert response.status_code == 200, response.text
    [decision] = await decisions(service, tenant, email)
    assert decision["event_id"] == f"woocommerce:{delivery}"


async def test_zendesk_event_webhooks_are_fresh_or_refused(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    secret = "zendesk-signing-secret-" + uuid.uuid4().hex
    endpoint = await configure(service, tenant, "zendesk", secret=secret)
    event = json.loads((FIXTURES / "zendesk_ticket_status_changed.json").read_bytes())
    requester = str(random.randint(10**12, 10**13))
    event["id"] = str(uuid.uuid4())
    event["detail"]["requester_id"] = requester
    body = json.dumps(event).encode()

    def signed(at: datetime) -> dict[str, str]:
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "Content-Type": "application/json",
            "X-Zendesk-Webhook-Signature-Timestamp": stamp,
            "X-Zendesk-Webhook-Signature": b64_hmac(secret, stamp.encode(), body),
        }

    stale = await service.client.post(
        endpoint["url_path"], content=body, headers=signed(datetime.now(UTC) - timedelta(minutes=6))
    )
    assert stale.status_code == 401
    assert await decisions(service, tenant, requester) == []
    fresh = await service.client.post(endpoint["url_path"], content=body, headers=signed(datetime.now(UTC)))
    assert fresh.status_code == 200, fresh.text
    [decision] = await decisions(service, tenant, requester)
    assert (decision["event_id"], decision["event_type"]) == (f"zendesk:{event['id']}", "ticket.closed.v1")


async def test_freshdesk_needs_its_token_and_triggers_only_on_resolved(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    endpoint = await configure(service, tenant, "freshdesk")
    token = {"X-NPS-Webhook-Token": endpoint["secret"], "Content-Type": "application/json"}
    sample = (FIXTURES / "freshdesk_ticket_status_changed.json").read_bytes()
    refused = await service.client.post(endpoint["url_path"], content=sample)
    assert refused.status_code == 401
    out_of_resolved = await service.client.post(endpoint["url_path"], content=sample, headers=token)
    assert out_of_resolved.status_code == 200
    assert "not to resolved or closed" in out_of_resolved.json()["ignored"]

    payload = json.loads(sample)
    email = f"requester-{uuid.uuid4().hex[:8]}@example.com"
    payload["freshdesk_webhook"].update(
        triggered_event="{status:{from:2,to:4}}",
        requester_email=email,
        ticket_id=str(random.randint(1, 10**9)),
    )
    resolved = await service.client.post(endpoint["url_path"], content=json.dumps(payload), headers=token)
    assert resolved.status_code == 200, resolved.text
    [decision] = await decisions(service, tenant, email)
    assert decision["event_type"] == "ticket.closed.v1"


async def test_a_generic_mapping_is_validated_and_maps_a_signed_body(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    mapping: dict[str, Any] = {
        "event_type": "purchase.completed.v1",
        "id": "event.id",
        "fields": {"order_id": "order.number", "customer_id": "customer.id", "email": "customer.email"},
        "signature": {"header": "X-Signature", "encoding": "hex", "prefix": "sha256="},
    }
    broken = copy.deepcopy(mapping)
    del broken["fields"]["customer_id"]
    refused = await service.client.post(
        "/v1/webhooks", json={"platform": "generic", "mapping": broken}, headers=tenant.headers
    )
    assert refused.status_code == 422
    assert "customer_id must be mapped" in refused.json()["detail"]
    not_generic = await service.client.post(
        "/v1/webhooks", json={"platform": "freshdesk", "mapping": mapping}, headers=tenant.headers
    )
    assert not_generic.status_code == 422
    no_secret = await service.client.post(
        "/v1/webhooks", json={"platform": "zendesk"}, headers=tenant.headers
    )
    assert (no_secret.status_code, "secret" in no_secret.json()["detail"]) == (422, True)

    endpoint = await configure(service, tenant, "generic", mapping=mapping)
    customer = f"c-{uuid.uuid4().hex}"
    body = json.dumps(
        {
            "event": {"id": uuid.uuid4().hex},
            "order": {"number": 10001},
            "customer": {"id": customer, "email": "jane@example.com"},
        }
    ).encode()
    digest = hmac.new(endpoint["secret"].encode(), body, hashlib.sha256).hexdigest()
    response = await service.client.post(
        endpoint["url_path"], content=body, headers={"X-Signature": f"sha256={digest}"}
    )
    assert response.status_code == 200, response.text
    [decision] = await decisions(service, tenant, customer)
    assert decision["event_type"] == "purchase.completed.v1"

    listed = await service.client.get("/v1/webhooks", headers=tenant.headers)
    [shown] = listed.json()["webhooks"]
    assert shown["id"] == endpoint["id"] and shown["mapping"]["fields"] == mapping["fields"]
    assert endpoint["secret"] not in listed.text and "secret" not in shown
