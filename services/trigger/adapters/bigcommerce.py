"""BigCommerce order webhooks (`store/order/created`, `store/order/statusUpdated`).

BigCommerce's payload is thin: the order's id and, on a status change, the status ids; no email,
no amount. So a delivery is not decided when it arrives: ``notice`` reads what it says, the route
queues a fetch, and a job fetches the order (``GET /stores/{hash}/v2/orders/{id}``) and its
customer (``GET /stores/{hash}/v3/customers?id:in={id}``) with the store's API token, and
``map_order`` turns what it fetched into our events.

Two ways to prove a delivery is BigCommerce's, both with the endpoint's secret:

- **Standard Webhooks** (what BigCommerce signs with today): ``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature: v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>``, where the key is the
  app's client secret (BigCommerce's docs base64 it for the ``standardwebhooks`` library; a secret
  given as ``whsec_…`` is used as it is). Stale timestamps (over 5 minutes) are refused.
- **A custom header** set on the hook when it is created (BigCommerce's ``headers`` property):
  ``X-NPS-Webhook-Token: <secret>``, compared in constant time. It carries no timestamp; replays
  are refused by the delivery id, which is then BigCommerce's payload ``hash`` (a retry of the
  same event carries the same hash).

When the signature headers are present they must verify: a token never rescues a bad signature.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from libs.common.events import ORDER_CANCELLED, PURCHASE_COMPLETED, Contract, Event, InvalidEvent
from services.trigger.adapters import signatures
from services.trigger.adapters.common import (
    Delivery,
    Headers,
    Ignored,
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

PLATFORM = "bigcommerce"
WEBHOOK_ID = "webhook-id"
WEBHOOK_TIMESTAMP = "webhook-timestamp"
WEBHOOK_SIGNATURE = "webhook-signature"
TOKEN = "X-NPS-Webhook-Token"
_SECRET_PREFIX = "whsec_"

CREATED = "store/order/created"
STATUS_UPDATED = "store/order/statusUpdated"
SCOPES = frozenset({CREATED, STATUS_UPDATED})

#: BigCommerce's order statuses (``GET /v2/order_statuses``) in which the customer has bought: paid
#: and awaiting fulfilment, pickup or shipment, shipped, partly shipped, completed. The status the
#: event carries is the name, as touchpoint filters match on it.
PURCHASED = {
    2: "shipped",
    3: "partially_shipped",
    8: "awaiting_pickup",
    9: "awaiting_shipment",
    10: "completed",
    11: "awaiting_fulfillment",
}
#: Statuses that undo an order, and the reason the cancellation carries. A declined order was never
#: paid: the shop's equivalent of a voided one.
UNDONE = {4: "refunded", 5: "cancelled", 6: "voided"}
#: The rest (0 Incomplete, 1 Pending, 7 Awaiting Payment, 12 Manual Verification Required,
#: 13 Disputed, 14 Partially Refunded) neither complete nor cancel a purchase.
_GUEST = "0"


@dataclass(frozen=True)
class OrderNotice:
    """What a verified delivery says: which order, and the id that makes a retry a duplicate."""

    delivery_id: str
    scope: str
    order_id: str
    new_status_id: int | None


def signing_key(secret: str) -> str:
    """The key as the ``standardwebhooks`` library takes it (base64), from a client secret."""
    if secret.startswith(_SECRET_PREFIX):
        return secret
    return base64.b64encode(secret.encode()).decode()


def verify(secret: str, headers: Headers, body: bytes, now: datetime) -> None:
    signature = header(headers, WEBHOOK_SIGNATURE)
    if signature is None:
        presented = header(headers, TOKEN)
        if not presented:
            raise Unauthorized(f"missing {WEBHOOK_SIGNATURE} (Standard Webhooks) or {TOKEN} header")
        if not signatures.same_secret(presented.strip(), secret):
            raise Unauthorized(f"{TOKEN} does not match this endpoint's secret")
        return
    webhook_id = header(headers, WEBHOOK_ID)
    timestamp = header(headers, WEBHOOK_TIMESTAMP)
    if not webhook_id or not timestamp:
        raise Unauthorized(f"a signed delivery needs {WEBHOOK_ID} and {WEBHOOK_TIMESTAMP} headers")
    signed_at = signatures.parse_timestamp(timestamp)
    if signed_at is None or not signatures.is_fresh(signed_at, now):
        raise Unauthorized(f"{WEBHOOK_TIMESTAMP} is missing, unreadable or more than 5 minutes from now")
    try:
        Webhook(signing_key(secret)).verify(
            body,
            {WEBHOOK_ID: webhook_id, WEBHOOK_TIMESTAMP: timestamp, WEBHOOK_SIGNATURE: signature},
            json_parse=False,
        )
    except (WebhookVerificationError, ValueError, binascii.Error):
        # ValueError covers a body that is not UTF-8 and a malformed signature list.
        raise Unauthorized(f"{WEBHOOK_SIGNATURE} does not match the body") from None


def notice(delivery: Delivery) -> OrderNotice | Ignored:
    """What a verified delivery asks for: an order to fetch, or nothing (another scope, or a status
    change to a status that neither completes nor cancels a purchase: nothing to fetch for it)."""
    payload = delivery.payload
    if not isinstance(payload, dict):
        raise InvalidEvent("a BigCommerce webhook body must be a JSON object")
    scope = text(payload.get("scope")) or ""
    if scope not in SCOPES:
        return Ignored(f"BigCommerce scope {scope[:80]!r} is not handled: use {CREATED} or {STATUS_UPDATED}")
    data = object_at(payload, "data")
    order_id = identifier(data.get("id"))
    if order_id is None or not order_id.isdigit():
        raise InvalidEvent("data.id: the order id must be a number")
    new_status: int | None = None
    if scope == STATUS_UPDATED:
        status = object_at(data, "status")
        raw = status.get("new_status_id")
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise InvalidEvent("data.status.new_status_id: a status change must name the new status")
        new_status = raw
        if raw not in PURCHASED and raw not in UNDONE:
            return Ignored(f"order status {raw} neither completes nor cancels a purchase")
    delivery_id = identifier(header(delivery.headers, WEBHOOK_ID)) or identifier(payload.get("hash"))
    if delivery_id is None:
        raise InvalidEvent("hash: the delivery has neither a webhook-id header nor a hash")
    return OrderNotice(delivery_id=delivery_id, scope=scope, order_id=order_id, new_status_id=new_status)


def map_order(
    *,
    tenant_id: str,
    delivery_id: str,
    order: Any,
    customers: Any,
    now: datetime,
) -> list[Event[Contract]] | Ignored:
    """The events an order (``GET /v2/orders/{id}``) and its customer (``GET /v3/customers``) mean.

    The order's status *now* decides, not the one the webhook named: a fetch retried for minutes
    must not announce a purchase that was cancelled meanwhile. The customer's account email wins
    over the billing email (which is the order's, and may be anyone's); a guest (``customer_id``
    0) is known by the billing email."""
    if not isinstance(order, dict):
        raise InvalidEvent("the store's order is not a JSON object")
    order_id = identifier(order.get("id"))
    if order_id is None:
        raise InvalidEvent("id: the store's order has no id")
    status_id = order.get("status_id")
    if isinstance(status_id, bool) or not isinstance(status_id, int):
        raise InvalidEvent("status_id: the store's order has no status")
    if status_id not in PURCHASED and status_id not in UNDONE:
        label = text(order.get("status")) or str(status_id)
        return Ignored(f"order status {label[:50]!r} neither completes nor cancels a purchase")
    billing = object_at(order, "billing_address")
    customer = _customer(customers)
    email = text(customer.get("email")) or text(billing.get("email"))
    registered = identifier(order.get("customer_id"))
    customer_id = registered if registered not in (None, _GUEST) else email_as_customer(email)
    if customer_id is None:
        raise InvalidEvent("customer_id: a guest order without billing_address.email names no customer")
    delivery = Delivery(tenant_id=tenant_id, headers={}, body=b"", payload=order, now=now)
    if status_id in UNDONE:
        cancelled = {
            "order_id": order_id,
            "customer_id": customer_id,
            "reason": UNDONE[status_id],
            "occurred_at": _rfc2822(order.get("date_modified")),
        }
        return [_event(ORDER_CANCELLED, delivery_id, delivery, cancelled)]
    purchase = {
        "order_id": order_id,
        "customer_id": customer_id,
        "email": email,
        "name": full_name(customer.get("first_name"), customer.get("last_name"))
        or full_name(billing.get("first_name"), billing.get("last_name")),
        "locale": locale(order.get("customer_locale")),
        "amount": decimal_text(order.get("total_inc_tax")),
        "currency": text(order.get("currency_code")),
        "occurred_at": _rfc2822(order.get("date_created")),
        "status": PURCHASED[status_id],
        "attributes": attributes(country=text(billing.get("country_iso2"))),
    }
    return [_event(PURCHASE_COMPLETED, delivery_id, delivery, purchase)]


def _customer(customers: Any) -> dict[str, Any]:
    """The one customer ``?id:in=`` returned; none for a guest, or when the store found none."""
    data = customers.get("data") if isinstance(customers, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return data[0]
    return {}


def _rfc2822(value: Any) -> str | None:
    """BigCommerce's v2 times (``Tue, 05 Mar 2019 21:40:11 +0000``) as ISO 8601; unreadable: left out."""
    candidate = text(value)
    if candidate is None:
        return None
    try:
        parsed = parsedate_to_datetime(candidate)
    except (TypeError, ValueError):
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()


def _event(event_type: str, delivery_id: str, delivery: Delivery, data: dict[str, Any]) -> Event[Contract]:
    return build_event(
        platform=PLATFORM, delivery_id=delivery_id, event_type=event_type, delivery=delivery, data=data
    )
