"""WooCommerce order webhooks (`order.created`, `order.updated`); the body is the REST order.

``X-WC-Webhook-Signature`` = base64(HMAC-SHA256(the webhook's secret, body)). When a webhook is
saved, WooCommerce first sends an unsigned, form-encoded ping (``webhook_id=<n>``) and disables
the webhook unless it gets a 2xx.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

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
    object_at,
    text,
)

PLATFORM = "woocommerce"
SIGNATURE = "X-WC-Webhook-Signature"
TOPIC = "X-WC-Webhook-Topic"
DELIVERY_ID = "X-WC-Webhook-Delivery-ID"

TOPICS = frozenset({"order.created", "order.updated"})
#: Statuses in which the customer has bought: a purchase is complete.
PURCHASED = frozenset({"processing", "completed"})
#: Statuses that undo an order, and the reason the cancellation carries. A failed payment never
#: became a purchase: it is the shop's equivalent of a voided one.
UNDONE = {"cancelled": "cancelled", "refunded": "refunded", "failed": "voided"}
_PING_LIMIT = 64


def is_ping(headers: Headers, body: bytes) -> bool:
    """WooCommerce's creation ping: no signature, and a body that is nothing but ``webhook_id=<n>``."""
    if header(headers, SIGNATURE) is not None or len(body) > _PING_LIMIT:
        return False
    try:
        form = parse_qs(body.decode("ascii"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return False
    values = form.get("webhook_id", [])
    return set(form) == {"webhook_id"} and len(values) == 1 and values[0].isdigit()


def verify(secret: str, headers: Headers, body: bytes, now: datetime) -> None:
    presented = header(headers, SIGNATURE)
    if not presented:
        raise Unauthorized(f"missing {SIGNATURE} header")
    if not signatures.same(presented, signatures.base64_hmac(secret, body)):
        raise Unauthorized(f"{SIGNATURE} does not match the body")


def map(delivery: Delivery) -> MapResult:
    topic = (header(delivery.headers, TOPIC) or "").strip()
    if topic not in TOPICS:
        return Ignored(f"WooCommerce topic {topic!r} is not handled: use order.created or order.updated")
    order = delivery.payload
    if not isinstance(order, dict):
        raise InvalidEvent("an order webhook body must be a JSON object")
    order_id = identifier(order.get("id"))
    if order_id is None:
        raise InvalidEvent("id: the order has no id")
    status = (text(order.get("status")) or "").lower()
    if status not in PURCHASED and status not in UNDONE:
        return Ignored(f"order status {status!r} neither completes nor cancels a purchase")
    billing = object_at(order, "billing")
    email = text(billing.get("email"))
    # customer_id 0 is a guest checkout.
    registered = identifier(order.get("customer_id"))
    customer_id = registered if registered not in (None, "0") else email_as_customer(email)
    if customer_id is None:
        raise InvalidEvent("customer_id: a guest order without billing.email names no customer")
    delivery_id = identifier(header(delivery.headers, DELIVERY_ID)) or f"{topic}:{order_id}:{status}"

    if status in UNDONE:
        cancelled = {
            "order_id": order_id,
            "customer_id": customer_id,
            "reason": UNDONE[status],
            "occurred_at": text(order.get("date_modified_gmt")),
        }
        return [_event(ORDER_CANCELLED, delivery_id, delivery, cancelled)]
    occurred = (
        (text(order.get("date_completed_gmt")) if status == "completed" else None)
        or text(order.get("date_paid_gmt"))
        or text(order.get("date_created_gmt"))
    )
    purchase = {
        "order_id": order_id,
        "customer_id": customer_id,
        "email": email,
        "name": full_name(billing.get("first_name"), billing.get("last_name")),
        "amount": decimal_text(order.get("total")),
        "currency": text(order.get("currency")),
        # WooCommerce's *_gmt times are UTC without a zone; the contract reads zone-less as UTC.
        "occurred_at": occurred,
        "status": status,
        # Shipping, else billing: an ISO 3166-1 alpha-2 code; a virtual order has no shipping address.
        "attributes": attributes(
            country=text(object_at(order, "shipping").get("country")) or text(billing.get("country"))
        ),
    }
    return [_event(PURCHASE_COMPLETED, delivery_id, delivery, purchase)]


def _event(event_type: str, delivery_id: str, delivery: Delivery, data: dict[str, Any]) -> Event[Contract]:
    return build_event(
        platform=PLATFORM, delivery_id=delivery_id, event_type=event_type, delivery=delivery, data=data
    )
