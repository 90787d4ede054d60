"""Stripe, Intercom, Zammad and Help Scout against the real trigger (Postgres, broker): a tenant
configures a receiver, the platform posts its real published payload signed over the raw bytes, and
the decision shows up; forged, stale and replayed deliveries change nothing, and what the trigger
does not act on is answered 200 with the reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
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


async def post(
    service: ServiceUnderTest, endpoint: dict[str, Any], body: bytes, **headers: str
) -> httpx.Response:
    wire = {"Content-Type": "application/json", **{name.replace("_", "-"): v for name, v in headers.items()}}
    return await service.client.post(endpoint["url_path"], content=body, headers=wire)


async def refused_count(service: ServiceUnderTest, platform: str) -> float:
    return await metric_value(
        service.client, "nps_trigger_webhooks_total", platform=platform, outcome="unauthorized"
    )


# --- Stripe -------------------------------------------------------------------------------------

STRIPE_SECRET = "whsec_" + "0123456789abcdef" * 2


def stripe_signature(body: bytes, *secrets: str, at: int | None = None) -> str:
    stamp = str(int(time.time()) if at is None else at)
    digests = [hmac.new(s.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest() for s in secrets]
    return ",".join([f"t={stamp}", *(f"v1={digest}" for digest in digests)])


def stripe_session(*, live: bool = True, **changes: Any) -> tuple[bytes, str]:
    """Stripe's captured delivery as a live-mode purchase of a new customer."""
    event = parse_json((FIXTURES / "stripe_checkout_session_completed.json").read_bytes())
    customer = f"cus_{uuid.uuid4().hex[:14]}"
    event["id"] = f"evt_{uuid.uuid4().hex}"
    event["livemode"] = live
    event["data"]["object"].update(customer=customer, livemode=live, **changes)
    return json.dumps(event, default=str, indent=2).encode(), customer


async def test_a_signed_stripe_checkout_is_decided_and_a_replay_is_a_duplicate(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    endpoint = await configure(service, tenant, "stripe", secret=STRIPE_SECRET)
    body, customer = stripe_session()
    event_id = json.loads(body)["id"]

    first = await post(service, endpoint, body, Stripe_Signature=stripe_signature(body, STRIPE_SECRET))
    assert first.status_code == 200, first.text
    [result] = first.json()["results"]
    assert (result["id"], result["status"]) == (f"stripe:{event_id}", "accepted")
    [decision] = await decisions(service, tenant, customer)
    assert (decision["event_id"], decision["event_type"]) == (f"stripe:{event_id}", "purchase.completed.v1")
    # What the tenant sees: the new customer is invited, at the webshop touchpoint a new tenant has.
    assert (decision["outcome"], decision["touchpoint"]) == ("invited", "webshop-purchase")

    # Stripe retries with a new timestamp and signature; the event id is what makes it the same.
    again = await post(service, endpoint, body, Stripe_Signature=stripe_signature(body, STRIPE_SECRET))
    assert again.json()["results"][0]["status"] == "duplicate"
    assert len(await decisions(service, tenant, customer)) == 1


async def test_stripe_forged_stale_and_rotated_signatures(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    endpoint = await configure(service, tenant, "stripe", secret=STRIPE_SECRET)
    body, customer = stripe_session()
    before = await refused_count(service, "stripe")

    forged = await post(
        service, endpoint, body, Stripe_Signature=stripe_signature(body, "whsec_not-ours-0123456789")
    )
    assert (forged.status_code, forged.json()["error"]) == (401, "unauthorized")
    stale_at = int(time.time()) - 301
    stale = await post(
        service, endpoint, body, Stripe_Signature=stripe_signature(body, STRIPE_SECRET, at=stale_at)
    )
    assert stale.status_code == 401
    assert "more than 5 minutes" in stale.json()["detail"]
    unsigned = await post(service, endpoint, body)
    assert unsigned.status_code == 401
    assert await decisions(service, tenant, customer) == []
    assert await refused_count(service, "stripe") == before + 3

    # During a secret roll Stripe signs with both: the first v1 (the old secret) no longer matches.
    rotated = stripe_signature(body, "whsec_the-old-secret-0123456789", STRIPE_SECRET)
    assert rotated.count("v1=") == 2
    accepted = await post(service, endpoint, body, Stripe_Signature=rotated)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["results"][0]["status"] == "accepted"
    assert len(await decisions(service, tenant, customer)) == 1


async def test_stripe_test_mode_unpaid_and_other_events(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    endpoint = await configure(service, tenant, "stripe", secret=STRIPE_SECRET)

    # The captured delivery as it is: a test-mode checkout, recorded as filtered like a test order.
    test_mode, customer = stripe_session(live=False)
    response = await post(
        service, endpoint, test_mode, Stripe_Signature=stripe_signature(test_mode, STRIPE_SECRET)
    )
    assert response.status_code == 200, response.text
    [decision] = await decisions(service, tenant, customer)
    assert (decision["outcome"], decision["reason"]) == ("skipped", "filtered")

    unpaid, unpaid_customer = stripe_session(payment_status="unpaid")
    ignored = await post(service, endpoint, unpaid, Stripe_Signature=stripe_signature(unpaid, STRIPE_SECRET))
    assert ignored.status_code == 200
    assert "payment_status is 'unpaid'" in ignored.json()["ignored"]
    assert await decisions(service, tenant, unpaid_customer) == []

    other = json.dumps({**json.loads(unpaid), "type": "customer.created"}).encode()
    response = await post(service, endpoint, other, Stripe_Signature=stripe_signature(other, STRIPE_SECRET))
    assert (response.status_code, "customer.created" in response.json()["ignored"]) == (200, True)


async def test_stripe_needs_its_own_signing_secret(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    for platform in ("stripe", "intercom"):
        refused = await service.client.post(
            "/v1/webhooks", json={"platform": platform}, headers=tenant.headers
        )
        assert refused.status_code == 422
        assert "secret" in refused.json()["detail"]


# --- Intercom -----------------------------------------------------------------------------------

INTERCOM_SECRET = "intercom-client-secret-" + "0123456789abcdef"


def hub(body: bytes, secret: str) -> str:
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def intercom_closed() -> tuple[bytes, str]:
    notification = parse_json((FIXTURES / "intercom_conversation_admin_closed.json").read_bytes())
    user_id = str(uuid.uuid4())
    notification["id"] = f"notif_{uuid.uuid4()}"
    notification["data"]["item"]["user"]["user_id"] = user_id
    return json.dumps(notification).encode(), user_id


async def test_intercom_closed_conversation_ping_forgery_and_replay(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    endpoint = await configure(service, tenant, "intercom", secret=INTERCOM_SECRET)
    ping = (FIXTURES / "intercom_ping.json").read_bytes()
    answered = await post(service, endpoint, ping, X_Hub_Signature=hub(ping, INTERCOM_SECRET))
    assert (answered.status_code, answered.json()) == (200, {"ignored": "ping"})

    body, customer = intercom_closed()
    before = await refused_count(service, "intercom")
    forged = await post(service, endpoint, body, X_Hub_Signature=hub(body, "not-the-client-secret"))
    assert forged.status_code == 401
    assert await decisions(service, tenant, customer) == []
    assert await refused_count(service, "intercom") == before + 1

    genuine = await post(service, endpoint, body, X_Hub_Signature=hub(body, INTERCOM_SECRET))
    assert genuine.status_code == 200, genuine.text
    [decision] = await decisions(service, tenant, customer)
    notification_id = json.loads(body)["id"]
    assert (decision["event_id"], decision["event_type"]) == (
        f"intercom:{notification_id}",
        "ticket.closed.v1",
    )
    replay = await post(service, endpoint, body, X_Hub_Signature=hub(body, INTERCOM_SECRET))
    assert replay.json()["results"][0]["status"] == "duplicate"
    assert len(await decisions(service, tenant, customer)) == 1


# --- Zammad -------------------------------------------------------------------------------------


def zammad_ticket(state: str) -> tuple[bytes, str]:
    payload = parse_json((FIXTURES / "zammad_ticket_trigger_default.json").read_bytes())
    customer = str(uuid.uuid4().int % 10**9)
    payload["ticket"].update(state=state, customer_id=int(customer), id=uuid.uuid4().int % 10**9)
    return json.dumps(payload).encode(), customer


async def test_zammad_closed_ticket_with_a_generated_token(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    endpoint = await configure(service, tenant, "zammad")
    token = endpoint["secret"]

    # The published sample as it is: an open ticket, which asks nothing of us.
    sample = (FIXTURES / "zammad_ticket_trigger_default.json").read_bytes()
    open_ticket = await post(service, endpoint, sample, X_Hub_Signature=hub(sample, token))
    assert (open_ticket.status_code, open_ticket.json()) == (
        200,
        {"ignored": "ticket state is 'open', not closed"},
    )

    body, customer = zammad_ticket("closed")
    forged = await post(service, endpoint, body, X_Hub_Signature=hub(body, "not-the-token-0123456789"))
    assert forged.status_code == 401
    assert await decisions(service, tenant, customer) == []

    delivery = str(uuid.uuid4())
    genuine = await post(
        service, endpoint, body, X_Hub_Signature=hub(body, token), X_Zammad_Delivery=delivery
    )
    assert genuine.status_code == 200, genuine.text
    [decision] = await decisions(service, tenant, customer)
    assert (decision["event_id"], decision["event_type"]) == (f"zammad:{delivery}", "ticket.closed.v1")
    assert decision["outcome"] == "invited", decision
    retried = await post(
        service, endpoint, body, X_Hub_Signature=hub(body, token), X_Zammad_Delivery=delivery
    )
    assert retried.json()["results"][0]["status"] == "duplicate"
    assert len(await decisions(service, tenant, customer)) == 1


# --- Help Scout ---------------------------------------------------------------------------------


def helpscout_signature(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha1).digest()).decode()


async def test_help_scout_closed_conversation_with_a_generated_secret(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    endpoint = await configure(service, tenant, "helpscout")
    secret = endpoint["secret"]
    # Help Scout refuses a secret longer than 40 characters.
    assert 32 <= len(secret) <= 40

    conversation = parse_json((FIXTURES / "helpscout_conversation.json").read_bytes())
    customer = str(uuid.uuid4().int % 10**9)
    conversation["primaryCustomer"]["id"] = int(customer)
    conversation["id"] = uuid.uuid4().int % 10**9
    body = json.dumps(conversation).encode()
    event = {"X_HelpScout_Event": "convo.status"}

    forged = await post(
        service, endpoint, body, X_HelpScout_Signature=helpscout_signature(body, "nope"), **event
    )
    assert forged.status_code == 401
    assert await decisions(service, tenant, customer) == []

    genuine = await post(
        service, endpoint, body, X_HelpScout_Signature=helpscout_signature(body, secret), **event
    )
    assert genuine.status_code == 200, genuine.text
    [decision] = await decisions(service, tenant, customer)
    assert (decision["event_type"], decision["outcome"]) == ("ticket.closed.v1", "invited"), decision
    assert decision["event_id"] == f"helpscout:conversation:{conversation['id']}:closed:2012-03-16T14:07:23Z"
    replay = await post(
        service, endpoint, body, X_HelpScout_Signature=helpscout_signature(body, secret), **event
    )
    assert replay.json()["results"][0]["status"] == "duplicate"

    reopened = json.dumps({**conversation, "status": "active"}).encode()
    ignored = await post(
        service, endpoint, reopened, X_HelpScout_Signature=helpscout_signature(reopened, secret), **event
    )
    assert (ignored.status_code, ignored.json()) == (
        200,
        {"ignored": "conversation status changed to 'active', not closed"},
    )
    test_event = await post(
        service,
        endpoint,
        body,
        X_HelpScout_Signature=helpscout_signature(body, secret),
        X_HelpScout_Event="helpscout.test",
    )
    assert test_event.status_code == 200 and "helpscout.test" in test_event.json()["ignored"]
    assert len(await decisions(service, tenant, customer)) == 1
