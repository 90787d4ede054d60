"""Zendesk: a trigger webhook with the body template in README.md, or an event webhook
subscribed to ``zen:event-type:ticket.status_changed``.

Zendesk signs ``timestamp + body``: ``X-Zendesk-Webhook-Signature`` = base64(HMAC-SHA256(the
webhook's signing secret, X-Zendesk-Webhook-Signature-Timestamp + raw body)). The timestamp
bounds replays: one more than five minutes from our clock is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from libs.common.events import TICKET_CLOSED, Contract, Event, InvalidEvent
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
)

PLATFORM = "zendesk"
SIGNATURE = "X-Zendesk-Webhook-Signature"
TIMESTAMP = "X-Zendesk-Webhook-Signature-Timestamp"
INVOCATION_ID = "X-Zendesk-Webhook-Invocation-Id"
STATUS_CHANGED = "zen:event-type:ticket.status_changed"
EVENT_PREFIX = "zen:event-type:"
#: Zendesk's status categories in which the customer's issue is done.
DONE = frozenset({"solved", "closed"})
#: ``{{ticket.requester.language}}`` renders the language's name; the common ones map to a locale.
LANGUAGES = {
    "english": "en",
    "danish": "da",
    "dutch": "nl",
    "finnish": "fi",
    "french": "fr",
    "german": "de",
    "italian": "it",
    "japanese": "ja",
    "norwegian": "no",
    "portuguese": "pt",
    "spanish": "es",
    "swedish": "sv",
}


def verify(secret: str, headers: Headers, body: bytes, now: datetime) -> None:
    presented = header(headers, SIGNATURE)
    stamp = header(headers, TIMESTAMP)
    if not presented:
        raise Unauthorized(f"missing {SIGNATURE} header")
    if not stamp:
        raise Unauthorized(f"missing {TIMESTAMP} header")
    signed_at = signatures.parse_timestamp(stamp)
    if signed_at is None:
        raise Unauthorized(f"{TIMESTAMP} is not a time")
    if not signatures.is_fresh(signed_at, now):
        raise Unauthorized(f"{TIMESTAMP} is more than 5 minutes away from now: a stale or replayed delivery")
    if not signatures.same(presented, signatures.base64_hmac(secret, stamp.encode(), body)):
        raise Unauthorized(f"{SIGNATURE} does not match the timestamp and body")


def map(delivery: Delivery) -> MapResult:
    payload = delivery.payload
    if not isinstance(payload, dict):
        raise InvalidEvent("a Zendesk webhook body must be a JSON object")
    event_type = text(payload.get("type"))
    if event_type is not None and event_type.startswith(EVENT_PREFIX):
        return _from_event(payload, event_type, delivery)
    return _from_trigger(payload, delivery)


def _from_event(payload: dict[str, Any], event_type: str, delivery: Delivery) -> MapResult:
    """The event webhook names the requester by id only: the rules look the address up."""
    if event_type != STATUS_CHANGED:
        return Ignored(f"Zendesk event {event_type!r} is not a ticket status change")
    status = (text(object_at(payload, "event").get("current")) or "").lower()
    if status not in DONE:
        return Ignored(f"ticket status changed to {status!r}, not solved or closed")
    detail = object_at(payload, "detail")
    ticket_id = identifier(detail.get("id"))
    if ticket_id is None:
        raise InvalidEvent("detail.id: the event names no ticket")
    requester = identifier(detail.get("requester_id"))
    if requester is None:
        raise InvalidEvent("detail.requester_id: the event names no requester")
    delivery_id = identifier(payload.get("id")) or f"ticket:{ticket_id}:{status}"
    closed = {
        "ticket_id": ticket_id,
        "customer_id": requester,
        "status": status,
        "closed_at": text(payload.get("time")) or text(detail.get("updated_at")),
        "account_id": _organization(detail.get("organization_id")),
        # Events name the group by id only.
        "attributes": attributes(priority=_priority(detail.get("priority")), group_id=detail.get("group_id")),
    }
    return [_event(delivery_id, delivery, closed)]


def _from_trigger(payload: dict[str, Any], delivery: Delivery) -> MapResult:
    """The body the admin pasted into the trigger (README.md): every placeholder is a string."""
    status = (text(payload.get("status")) or "").lower()
    if status not in DONE:
        return Ignored(f"ticket status is {status!r}, not solved or closed")
    ticket_id = identifier(payload.get("ticket_id"))
    if ticket_id is None:
        raise InvalidEvent("ticket_id: the body names no ticket; see the template in the webhook docs")
    email = text(payload.get("requester_email"))
    customer_id = identifier(payload.get("requester_id")) or email_as_customer(email)
    if customer_id is None:
        raise InvalidEvent("requester_id: the body names neither the requester's id nor email")
    delivery_id = identifier(header(delivery.headers, INVOCATION_ID)) or f"ticket:{ticket_id}:{status}"
    closed = {
        "ticket_id": ticket_id,
        "customer_id": customer_id,
        "email": email,
        "name": full_name(payload.get("requester_name")),
        "locale": _locale(payload.get("requester_language")),
        "agent_email": text(payload.get("assignee_email")),
        "status": status,
        "account_id": _organization(payload.get("organization_id")),
        "attributes": attributes(priority=_priority(payload.get("priority")), group=payload.get("group")),
    }
    return [_event(delivery_id, delivery, closed)]


def _organization(value: Any) -> str | None:
    organization = identifier(value)
    return organization if organization not in (None, "0") else None


def _priority(value: Any) -> str | None:
    """Lower-cased (events say ``HIGH``, placeholders ``High``); ``-`` is Zendesk's "no priority"."""
    priority = (text(value) or "").lower()
    return priority if priority not in ("", "-") else None


def _locale(value: Any) -> str | None:
    name = (text(value) or "").lower()
    return LANGUAGES.get(name) or locale(value)


def _event(delivery_id: str, delivery: Delivery, data: dict[str, Any]) -> Event[Contract]:
    return build_event(
        platform=PLATFORM, delivery_id=delivery_id, event_type=TICKET_CLOSED, delivery=delivery, data=data
    )
