"""Help Scout: the ``convo.status`` webhook event as ``ticket.closed.v1`` when the conversation's
status is ``closed``.

``X-HelpScout-Signature`` = base64(HMAC-SHA1(the webhook's secret key, raw body)); the event is
named in ``X-HelpScout-Event``, the body is the Mailbox API 2.0 conversation. Help Scout sends no
delivery id and no timestamp, so the conversation and the time it was closed name the delivery: a
retry of the same close is a duplicate, a close after a reopen is a new one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from libs.common.events import TICKET_CLOSED, InvalidEvent
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
    object_at,
    text,
)

PLATFORM = "helpscout"
SIGNATURE = "X-HelpScout-Signature"
EVENT = "X-HelpScout-Event"
STATUS = "convo.status"
CLOSED = "closed"
#: Help Scout takes a secret of at most 40 characters.
SECRET_LIMIT = 40


def verify(secret: str, headers: Headers, body: bytes, now: datetime) -> None:
    presented = header(headers, SIGNATURE)
    if not presented:
        raise Unauthorized(f"missing {SIGNATURE} header")
    if not signatures.same(presented, signatures.base64_hmac_sha1(secret, body)):
        raise Unauthorized(f"{SIGNATURE} does not match the body")


def map(delivery: Delivery) -> MapResult:
    event = (header(delivery.headers, EVENT) or "").strip()
    if event != STATUS:
        return Ignored(f"Help Scout event {event!r} is not handled: subscribe {STATUS}")
    conversation = delivery.payload
    if not isinstance(conversation, dict):
        raise InvalidEvent("a Help Scout conversation must be a JSON object")
    status = (text(conversation.get("status")) or "").lower()
    if status != CLOSED:
        return Ignored(f"conversation status changed to {status!r}, not closed")
    conversation_id = identifier(conversation.get("id"))
    if conversation_id is None:
        raise InvalidEvent("id: the conversation has no id")
    # Payload version 2 names the customer primaryCustomer; the retired version 1 said customer.
    customer = object_at(conversation, "primaryCustomer") or object_at(conversation, "customer")
    email = text(customer.get("email"))
    customer_id = identifier(customer.get("id")) or email_as_customer(email)
    if customer_id is None:
        raise InvalidEvent(
            "primaryCustomer: the conversation names neither a customer id nor an email address"
        )
    closed_at = text(conversation.get("closedAt")) or text(conversation.get("userUpdatedAt"))
    closed = {
        "ticket_id": conversation_id,
        "customer_id": customer_id,
        "email": email,
        "name": full_name(_first(customer), _last(customer)),
        "agent_email": text(object_at(conversation, "assignee").get("email"))
        or text(object_at(conversation, "closedByUser").get("email")),
        "status": CLOSED,
        "closed_at": closed_at,
        "attributes": attributes(mailbox_id=identifier(conversation.get("mailboxId"))),
    }
    return [
        build_event(
            platform=PLATFORM,
            delivery_id=f"conversation:{conversation_id}:closed:{closed_at or 'unknown'}",
            event_type=TICKET_CLOSED,
            delivery=delivery,
            data=closed,
        )
    ]


def _first(customer: dict[str, Any]) -> Any:
    return customer.get("first") or customer.get("firstName")


def _last(customer: dict[str, Any]) -> Any:
    return customer.get("last") or customer.get("lastName")
