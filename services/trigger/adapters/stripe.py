"""Stripe Checkout: ``checkout.session.completed`` (and ``checkout.session.async_payment_succeeded``
for delayed payment methods) as ``purchase.completed.v1``.

``Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`` where each ``v1`` is hex
HMAC-SHA256(the endpoint's signing secret, ``t + "." + raw body``). While a signing secret is being
rolled, Stripe signs with the old and the new one and sends both ``v1`` values: any one matching is
enough. A ``t`` more than 5 minutes from our clock is refused as a replay, the tolerance Stripe's own
libraries default to. Dedupe is on the event's ``id`` (``evt_...``), which a retry keeps.

The check is written here rather than taken from the ``stripe`` SDK: it is the few lines above, the
other platforms' checks share its helpers, and the SDK would be a large dependency for one HMAC.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from libs.common.events import PURCHASE_COMPLETED, InvalidEvent
from services.trigger.adapters import signatures
from services.trigger.adapters.common import (
    Delivery,
    Headers,
    Ignored,
    MapResult,
    Unauthorized,
    attributes,
    build_event,
    email_as_customer,
    full_name,
    header,
    identifier,
    locale,
    object_at,
    text,
    unix_time,
)

PLATFORM = "stripe"
SIGNATURE = "Stripe-Signature"
COMPLETED = "checkout.session.completed"
ASYNC_SUCCEEDED = "checkout.session.async_payment_succeeded"
PURCHASE_TYPES = frozenset({COMPLETED, ASYNC_SUCCEEDED})
#: More ``v1`` values than a rotation ever sends are not looked at (bounds the work per request).
_MAX_SIGNATURES = 8

#: Stripe's own minor units (stripe.com/docs/currencies), which are not always ISO 4217's: these have
#: none (an ``amount_total`` of 500 JPY is 500 yen) ...
# fmt: off
ZERO_DECIMAL = frozenset({
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA",
    "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
})
# fmt: on
#: ... these have three; every other currency has two, including ISK, HUF and TWD, which Stripe
#: still sends with two decimals (ISK 500 is 5 krónur) although ISO gives ISK none.
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def signature_parts(value: str) -> tuple[str | None, list[str]]:
    """``t=...,v1=...,v1=...,v0=...`` -> (the t value, every v1 value); other schemes are left out."""
    stamp: str | None = None
    candidates: list[str] = []
    for item in value.split(","):
        key, _, part = item.strip().partition("=")
        if key == "t" and stamp is None:
            stamp = part.strip()
        elif key == "v1" and part and len(candidates) < _MAX_SIGNATURES:
            candidates.append(part.strip())
    return stamp, candidates


def verify(secret: str, headers: Headers, body: bytes, now: datetime) -> None:
    presented = header(headers, SIGNATURE)
    if not presented:
        raise Unauthorized(f"missing {SIGNATURE} header")
    stamp, candidates = signature_parts(presented)
    if not stamp or not stamp.isdigit():
        raise Unauthorized(f"{SIGNATURE} has no t=<unix seconds> timestamp")
    if not candidates:
        raise Unauthorized(f"{SIGNATURE} has no v1 signature")
    expected = signatures.hex_hmac(secret, stamp.encode(), b".", body)
    matched = False
    for candidate in candidates:
        # Every candidate is compared, so the time taken does not tell which one matched.
        matched = signatures.same(candidate.lower(), expected) or matched
    if not matched:
        raise Unauthorized(f"no v1 signature in {SIGNATURE} matches the timestamp and body")
    signed_at = signatures.parse_timestamp(stamp)
    if signed_at is None or not signatures.is_fresh(signed_at, now):
        raise Unauthorized(
            f"{SIGNATURE} t= is more than 5 minutes away from now: a stale or replayed delivery"
        )


def amount_in_major_units(amount_minor: Any, currency: str) -> Decimal | None:
    """Stripe's integer ``amount_total`` in the currency's major units (1000 EUR -> 10.00)."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor < 0:
        return None
    exponent = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    return Decimal(amount_minor).scaleb(-exponent)


def map(delivery: Delivery) -> MapResult:
    event = delivery.payload
    if not isinstance(event, dict):
        raise InvalidEvent("a Stripe event must be a JSON object")
    event_type = text(event.get("type")) or ""
    if event_type not in PURCHASE_TYPES:
        return Ignored(f"Stripe event {event_type!r} is not handled: subscribe {COMPLETED}")
    event_id = identifier(event.get("id"))
    if event_id is None:
        raise InvalidEvent("id: the Stripe event has no id")
    session = object_at(object_at(event, "data"), "object")
    payment_status = text(session.get("payment_status")) or ""
    if payment_status != "paid":
        return Ignored(
            f"checkout session payment_status is {payment_status!r}, not 'paid': a delayed payment "
            f"is surveyed on {ASYNC_SUCCEEDED}"
        )
    order_id = identifier(session.get("id")) or identifier(session.get("payment_intent"))
    if order_id is None:
        raise InvalidEvent("data.object.id: the checkout session has no id")
    details = object_at(session, "customer_details")
    email = text(details.get("email")) or text(session.get("customer_email"))
    customer_id = identifier(session.get("customer")) or email_as_customer(email)
    if customer_id is None:
        raise InvalidEvent("data.object.customer: the session names neither a customer nor an email address")
    currency = (text(session.get("currency")) or "").upper() or None
    amount = amount_in_major_units(session.get("amount_total"), currency) if currency else None
    purchase = {
        "order_id": order_id,
        "customer_id": customer_id,
        "email": email,
        "name": full_name(details.get("name")),
        "locale": locale(session.get("locale")),
        "amount": str(amount) if amount is not None else None,
        "currency": currency if amount is not None else None,
        "occurred_at": unix_time(event.get("created")),
        "status": "paid",
        # Test mode is Stripe's test orders: recorded, never surveyed unless a touchpoint asks.
        "test": event.get("livemode") is False or session.get("livemode") is False,
        "attributes": attributes(country=object_at(details, "address").get("country")),
    }
    return [
        build_event(
            platform=PLATFORM,
            delivery_id=event_id,
            event_type=PURCHASE_COMPLETED,
            delivery=delivery,
            data=purchase,
        )
    ]
