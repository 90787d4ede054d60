"""Shopify order webhooks (`orders/paid`, `orders/fulfilled`, `orders/cancelled`).

Shopify signs the raw body: ``X-Shopify-Hmac-Sha256`` = base64(HMAC-SHA256(app client secret,
body)). ``X-Shopify-Webhook-Id`` stays the same when Shopify retries a delivery.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from libs.common.events import ORDER_CANCELLED, PURCHASE_COMPLETED, Contract, Event, InvalidEvent
from services.trigger.adapters import signatures
from services.trigger.adapters.common import (
    Delivery,
    Headers,
    Ignored,
    MapResult,
    Unauthorized,
    attributes,
    build_event,
    decimal_text,
    email_as_customer,
    full_name,
    header,
    identifier,
    locale,
    object_at,
    text,
)

PLATFORM = "shopify"
SIGNATURE = "X-Shopify-Hmac-Sha256"
TOPIC = "X-Shopify-Topic"
WEBHOOK_ID = "X-Shopify-Webhook-Id"

#: The topics that complete a purchase, and the status the event carries (touchpoints filter on it).
PURCHASE_TOPICS = {"orders/paid": "paid", "orders/fulfilled": "fulfilled"}
CANCEL_TOPIC = "orders/cancelled"
#: Financial statuses that mean no purchase stands any more, and the reason the event gives.
UNDONE = {"voided": "voided", "refunded": "refunded"}


def verify(secret: str, headers: Headers, body: bytes, now: datetime) -> None:
    presented = header(headers, SIGNATURE)
    if not presented:
        raise Unauthorized(f"missing {SIGNATURE} header")
    if not signatures.same(presented, signatures.base64_hmac(secret, body)):
        raise Unauthorized(f"{SIGNATURE} does not match the body")


def map(delivery: Delivery) -> MapResult:
    topic = (header(delivery.headers, TOPIC) or "").strip()
    if topic not in PURCHASE_TOPICS and topic != CANCEL_TOPIC:
        return Ignored(
            f"Shopify topic {topic!r} is not handled: subscribe orders/paid, orders/fulfilled, "
            "orders/cancelled"
        )
    order = delivery.payload
    if not isinstance(order, dict):
        raise InvalidEvent("an order webhook body must be a JSON object")
    order_id = identifier(order.get("id"))
    if order_id is None:
        raise InvalidEvent("id: the order has no id")
    customer = object_at(order, "customer")
    email = text(order.get("email")) or text(customer.get("email")) or text(order.get("contact_email"))
    customer_id = identifier(customer.get("id")) or email_as_customer(email)
    if customer_id is None:
        raise InvalidEvent("customer.id: the order names neither a customer nor an email address")
    delivery_id = identifier(header(delivery.headers, WEBHOOK_ID)) or f"{topic}:{order_id}"

    reason = _undone(order, topic)
    if reason is not None:
        cancelled = {
            "order_id": order_id,
            "customer_id": customer_id,
            "reason": reason,
            "occurred_at": text(order.get("cancelled_at")) or text(order.get("updated_at")),
        }
        return [_event(ORDER_CANCELLED, delivery_id, delivery, cancelled)]
    purchase = {
        "order_id": order_id,
        "customer_id": customer_id,
        "email": email,
        "name": full_name(customer.get("first_name"), customer.get("last_name")),
        "locale": locale(order.get("customer_locale")),
        "amount": decimal_text(order.get("total_price")),
        "currency": text(order.get("currency")),
        "occurred_at": text(order.get("processed_at")) or text(order.get("created_at")),
        "status": PURCHASE_TOPICS[topic],
        "test": order.get("test") is True,
        "attributes": attributes(country=_country(order)),
    }
    return [_event(PURCHASE_COMPLETED, delivery_id, delivery, purchase)]


def _undone(order: dict[str, Any], topic: str) -> str | None:
    """Why a purchase does not stand, if it does not: cancelled, voided or refunded."""
    if topic == CANCEL_TOPIC or text(order.get("cancelled_at")):
        return "cancelled"
    return UNDONE.get(text(order.get("financial_status")) or "")


def _country(order: dict[str, Any]) -> str | None:
    """Where the order goes, else where it is billed: ISO 3166-1 alpha-2 (``country_code``)."""
    return text(object_at(order, "shipping_address").get("country_code")) or text(
        object_at(order, "billing_address").get("country_code")
    )


def _event(event_type: str, delivery_id: str, delivery: Delivery, data: dict[str, Any]) -> Event[Contract]:
    return build_event(
        platform=PLATFORM, delivery_id=delivery_id, event_type=event_type, delivery=delivery, data=data
    )
