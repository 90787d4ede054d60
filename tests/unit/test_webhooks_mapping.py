"""Each platform's map() on the real published payloads (tests/fixtures/webhooks), and on variants
made by editing one field of them here."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from libs.common.events import (
    ORDER_CANCELLED,
    PURCHASE_COMPLETED,
    TICKET_CLOSED,
    Contract,
    Event,
    InvalidEvent,
    OrderCancelled,
    PurchaseCompleted,
    TicketClosed,
)
from services.trigger.adapters import (
    Delivery,
    Ignored,
    MapResult,
    NotJson,
    freshdesk,
    shopify,
    woocommerce,
    zendesk,
)
from services.trigger.adapters.common import parse_json

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"
TENANT = "3b0d3f6e-8f0a-4e55-9d8b-6a1f4c2e7d10"
NOW = datetime(2025, 1, 8, 16, 46, tzinfo=UTC)


def fixture(name: str) -> Any:
    return parse_json((FIXTURES / name).read_bytes())


def deliver(payload: Any, headers: dict[str, str] | None = None) -> Delivery:
    body = json.dumps(payload, default=str).encode()
    return Delivery(tenant_id=TENANT, headers=headers or {}, body=body, payload=payload, now=NOW)


def one(result: MapResult) -> Event[Contract]:
    assert not isinstance(result, Ignored), result
    [event] = result
    assert event.tenant_id == TENANT
    return event


# --- Shopify ------------------------------------------------------------------------------------


def shopify_order(**changes: Any) -> dict[str, Any]:
    """Shopify's sample is a cancelled, voided test order; a plain paid order undoes those three."""
    order: dict[str, Any] = fixture("shopify_orders_paid.json")
    order.update(cancelled_at=None, cancel_reason=None, financial_status="paid", test=False)
    order.update(changes)
    return order


def map_shopify(
    order: dict[str, Any], topic: str = "orders/paid", webhook_id: str = "b54557e4-bdd9"
) -> MapResult:
    return shopify.map(deliver(order, {"X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": webhook_id}))


def test_a_paid_shopify_order_completes_a_purchase_with_its_customer() -> None:
    event = one(map_shopify(shopify_order()))
    assert event.type == PURCHASE_COMPLETED
    assert event.id == "shopify:b54557e4-bdd9"
    assert event.envelope.subject == "115310627314723954"
    assert event.data == PurchaseCompleted(
        order_id="820982911946154508",
        customer_id="115310627314723954",
        email="jon@example.com",
        name="John Smith",
        locale="en",
        amount=Decimal("404.95"),
        currency="USD",
        occurred_at=datetime(2022, 1, 1, 0, 0, tzinfo=UTC),
        status="paid",
        test=False,
        attributes={"country": "US"},
    )


def test_shopify_ids_past_2_to_the_53_stay_exact() -> None:
    body = (FIXTURES / "shopify_orders_paid.json").read_bytes()
    for field, value in (
        (b'"cancelled_at": "2021-12-31T19:00:00-05:00"', b'"cancelled_at": null'),
        (b'"financial_status": "voided"', b'"financial_status": "paid"'),
        (b'"id": 820982911946154508', b'"id": 9007199254740993'),
        (b'"id": 115310627314723954', b'"id": 9007199254740995'),
    ):
        body = body.replace(field, value, 1)
    payload = parse_json(body)
    event = one(shopify.map(Delivery(TENANT, {"X-Shopify-Topic": "orders/paid"}, body, payload, NOW)))
    assert isinstance(event.data, PurchaseCompleted)
    # float(9007199254740993) is 9007199254740992.0: a float on the way would show here.
    assert event.data.order_id == "9007199254740993"
    assert event.data.customer_id == "9007199254740995"
    assert event.id == "shopify:orders/paid:9007199254740993"


def test_a_shopify_test_order_is_a_purchase_marked_test() -> None:
    event = one(map_shopify(shopify_order(test=True)))
    assert isinstance(event.data, PurchaseCompleted)
    assert event.data.test is True


def test_a_fulfilled_shopify_order_says_fulfilled() -> None:
    event = one(map_shopify(shopify_order(), topic="orders/fulfilled"))
    assert isinstance(event.data, PurchaseCompleted)
    assert event.data.status == "fulfilled"


@pytest.mark.parametrize(
    ("changes", "topic", "reason"),
    [
        ({"cancelled_at": "2021-12-31T19:00:00-05:00"}, "orders/paid", "cancelled"),
        ({"financial_status": "voided"}, "orders/paid", "voided"),
        ({"financial_status": "refunded"}, "orders/fulfilled", "refunded"),
        ({}, "orders/cancelled", "cancelled"),
    ],
)
def test_cancelled_voided_and_refunded_shopify_orders_cancel(
    changes: dict[str, Any], topic: str, reason: str
) -> None:
    event = one(map_shopify(shopify_order(**changes), topic=topic))
    assert event.type == ORDER_CANCELLED
    assert isinstance(event.data, OrderCancelled)
    assert (event.data.order_id, event.data.customer_id, event.data.reason) == (
        "820982911946154508",
        "115310627314723954",
        reason,
    )


def test_shopifys_published_sample_as_is_is_a_cancellation() -> None:
    """Cancelled, voided and a test order at once: the cancellation wins, nothing is surveyed."""
    event = one(map_shopify(fixture("shopify_orders_paid.json")))
    assert event.type == ORDER_CANCELLED
    assert isinstance(event.data, OrderCancelled)
    assert (event.data.reason, event.data.occurred_at) == ("cancelled", datetime(2022, 1, 1, tzinfo=UTC))


def test_a_shopify_guest_order_uses_the_email_as_customer() -> None:
    order = shopify_order(customer=None, email="", contact_email="Guest.Buyer@Example.com")
    event = one(map_shopify(order))
    assert isinstance(event.data, PurchaseCompleted)
    assert (event.data.customer_id, event.data.email) == (
        "guest.buyer@example.com",
        "Guest.Buyer@Example.com",
    )
    assert event.data.name is None


def test_shopify_email_falls_back_to_the_customers() -> None:
    event = one(map_shopify(shopify_order(email=None)))
    assert isinstance(event.data, PurchaseCompleted)
    assert event.data.email == "john@example.com"


def test_a_shopify_topic_we_do_not_handle_is_ignored() -> None:
    result = map_shopify(shopify_order(), topic="orders/create")
    assert isinstance(result, Ignored)
    assert "orders/create" in result.reason


def test_a_shopify_order_without_customer_or_email_is_invalid() -> None:
    with pytest.raises(InvalidEvent, match="customer"):
        map_shopify(shopify_order(customer=None, email=None, contact_email=None))


# --- WooCommerce --------------------------------------------------------------------------------


def woo(order: dict[str, Any], topic: str = "order.created", delivery: str = "5d8a") -> MapResult:
    headers = {"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Delivery-ID": delivery}
    return woocommerce.map(deliver(order, headers))


def test_the_woocommerce_sample_is_a_guest_purchase_keyed_by_the_billing_email() -> None:
    event = one(woo(fixture("woocommerce_order_created.json")))
    assert event.id == "woocommerce:5d8a"
    assert event.data == PurchaseCompleted(
        order_id="727",
        customer_id="john.doe@example.com",
        email="john.doe@example.com",
        name="John Doe",
        amount=Decimal("29.35"),
        currency="USD",
        occurred_at=datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC),
        status="processing",
        attributes={"country": "US"},
    )


def test_a_registered_woocommerce_customer_keeps_their_id() -> None:
    order = fixture("woocommerce_order_created.json") | {"customer_id": 42, "status": "completed"}
    order["date_completed_gmt"] = "2017-03-23T08:00:00"
    event = one(woo(order, topic="order.updated"))
    assert isinstance(event.data, PurchaseCompleted)
    assert (event.data.customer_id, event.data.status) == ("42", "completed")
    assert event.data.occurred_at == datetime(2017, 3, 23, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "reason"), [("cancelled", "cancelled"), ("refunded", "refunded"), ("failed", "voided")]
)
def test_woocommerce_orders_undone_cancel(status: str, reason: str) -> None:
    event = one(woo(fixture("woocommerce_order_created.json") | {"status": status}, topic="order.updated"))
    assert event.type == ORDER_CANCELLED
    assert isinstance(event.data, OrderCancelled)
    assert (event.data.order_id, event.data.customer_id, event.data.reason) == (
        "727",
        "john.doe@example.com",
        reason,
    )


@pytest.mark.parametrize("status", ["pending", "on-hold", "checkout-draft"])
def test_other_woocommerce_statuses_are_ignored(status: str) -> None:
    result = woo(fixture("woocommerce_order_created.json") | {"status": status})
    assert isinstance(result, Ignored)
    assert status in result.reason


def test_woocommerce_topics_other_than_orders_are_ignored() -> None:
    assert isinstance(woo(fixture("woocommerce_order_created.json"), topic="product.created"), Ignored)


# --- Zendesk ------------------------------------------------------------------------------------


def test_a_zendesk_status_change_to_solved_closes_the_ticket_for_the_requester_id() -> None:
    event = one(zendesk.map(deliver(fixture("zendesk_ticket_status_changed.json"))))
    assert event.type == TICKET_CLOSED
    assert event.id == "zendesk:a8b9c1d2-3e4f-5a6b-7c8d-9e0f1a2b3c4d"
    assert event.data == TicketClosed(
        ticket_id="5158",
        customer_id="8447388090494",
        status="solved",
        closed_at=datetime(2025, 1, 8, 16, 45, 20, 987654, tzinfo=UTC),
        account_id="8447346622462",
        attributes={"priority": "high", "group_id": "8447320466430"},
    )
    assert isinstance(event.data, TicketClosed)
    assert event.data.email is None


@pytest.mark.parametrize(
    ("current", "closes"), [("CLOSED", True), ("OPEN", False), ("PENDING", False), ("HOLD", False)]
)
def test_only_solved_or_closed_zendesk_statuses_close(current: str, closes: bool) -> None:
    payload = fixture("zendesk_ticket_status_changed.json")
    payload["event"] = {"current": current, "previous": "SOLVED"}
    result = zendesk.map(deliver(payload))
    assert isinstance(result, list) is closes


def test_a_zendesk_event_that_is_not_a_ticket_status_change_is_ignored() -> None:
    result = zendesk.map(deliver(fixture("zendesk_event_user_active_changed.json")))
    assert isinstance(result, Ignored)
    assert "user.active_changed" in result.reason


def test_the_zendesk_trigger_template_closes_with_email_name_and_agent() -> None:
    body = {
        "ticket_id": "35436",
        "status": "Solved",
        "requester_id": "20978392",
        "requester_email": "jane@example.com",
        "requester_name": "Jane Doe",
        "requester_language": "English",
        "assignee_email": "agent@support.example.com",
        "organization_id": "",
    }
    event = one(zendesk.map(deliver(body, {"X-Zendesk-Webhook-Invocation-Id": "8350205582"})))
    assert event.id == "zendesk:8350205582"
    assert event.data == TicketClosed(
        ticket_id="35436",
        customer_id="20978392",
        email="jane@example.com",
        name="Jane Doe",
        locale="en",
        agent_email="agent@support.example.com",
        status="solved",
    )


def test_a_zendesk_trigger_for_a_ticket_not_solved_is_ignored() -> None:
    assert isinstance(
        zendesk.map(deliver({"ticket_id": "1", "status": "Open", "requester_id": "2"})), Ignored
    )


# --- Freshdesk ----------------------------------------------------------------------------------


def test_the_freshdesk_sample_moves_a_ticket_out_of_resolved_and_asks_nothing() -> None:
    result = freshdesk.map(deliver(fixture("freshdesk_ticket_status_changed.json")))
    assert isinstance(result, Ignored)
    assert "resolved to custom status 6" in result.reason


@pytest.mark.parametrize(
    ("change", "status", "event_id"),
    [
        ("{status:{from:2,to:4}}", "resolved", "freshdesk:ticket:11:2-4"),
        ("{status:{from:4,to:5}}", "closed", "freshdesk:ticket:11:4-5"),
    ],
)
def test_a_freshdesk_change_to_resolved_or_closed_closes_the_ticket(
    change: str, status: str, event_id: str
) -> None:
    payload = fixture("freshdesk_ticket_status_changed.json")
    payload["freshdesk_webhook"]["triggered_event"] = change
    event = one(freshdesk.map(deliver(payload)))
    assert event.type == TICKET_CLOSED
    assert event.data == TicketClosed(
        ticket_id="11",
        customer_id="requester-bob@example.com",
        email="requester-bob@example.com",
        name="Requester Bob",
        status=status,
        attributes={"priority": "low"},
    )
    assert event.id == event_id


@pytest.mark.parametrize(
    ("triggered", "change"),
    [
        ("{status:{from:4,to:6}}", (4, 6)),
        ("{status:{from:2, to:4}}", (2, 4)),
        ("{ status : { from : Open , to : Resolved } }", (2, 4)),
        ("{priority:{from:1,to:2}}", None),
        ("{ticket_action:created}", None),
    ],
)
def test_freshdesk_triggered_events_are_read(triggered: str, change: tuple[int, int] | None) -> None:
    assert freshdesk.status_change(triggered) == change


def test_a_freshdesk_rule_that_is_not_a_status_change_is_ignored() -> None:
    payload = fixture("freshdesk_ticket_status_changed.json")
    payload["freshdesk_webhook"]["triggered_event"] = "{priority:{from:1,to:2}}"
    assert isinstance(freshdesk.map(deliver(payload)), Ignored)


# --- Parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe{}", b"NaN", b"[" * 100_000 + b"]" * 100_000])
def test_bodies_that_are_not_json_are_named_so(body: bytes) -> None:
    with pytest.raises(NotJson, match="not valid JSON"):
        parse_json(body)


def test_json_numbers_stay_exact() -> None:
    assert parse_json(b'{"id": 9007199254740993, "total": 0.1}') == {
        "id": 9007199254740993,
        "total": Decimal("0.1"),
    }
