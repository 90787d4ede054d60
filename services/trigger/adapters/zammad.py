"""Zammad: a trigger's webhook with the default payload (``{"ticket": ..., "article": ...}``) as
``ticket.closed.v1`` when the ticket's state is ``closed``.

With an *HMAC SHA1 Signature Token* set on the webhook, Zammad signs the raw body:
``X-Hub-Signature: sha1=<hex HMAC-SHA1(token, body)>``. ``X-Zammad-Delivery`` is the delivery's
job id, which Zammad's retries of the same delivery keep; ``X-Zammad-Trigger`` names the trigger.
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

PLATFORM = "zammad"
SIGNATURE = "X-Hub-Signature"
DELIVERY = "X-Zammad-Delivery"
#: Zammad's built-in closed state. Tickets merged into another are closed too, but by the merge,
#: not by an answer the customer could rate.
CLOSED = "closed"


def verify(secret: str, headers: Headers, body: bytes, now: datetime) -> None:
    problem = signatures.check_hub_signature(secret, header(headers, SIGNATURE), body, SIGNATURE)
    if problem is not None:
        raise Unauthorized(f"{problem} (set the webhook's HMAC SHA1 Signature Token to the secret)")


def map(delivery: Delivery) -> MapResult:
    payload = delivery.payload
    if not isinstance(payload, dict):
        raise InvalidEvent("a Zammad webhook body must be a JSON object")
    ticket = object_at(payload, "ticket")
    if not ticket:
        raise InvalidEvent("ticket: the body has no ticket; use the webhook's default payload")
    state = _name(ticket.get("state"))
    if state != CLOSED:
        return Ignored(f"ticket state is {state!r}, not closed")
    ticket_id = identifier(ticket.get("id"))
    if ticket_id is None:
        raise InvalidEvent("ticket.id: the ticket has no id")
    customer = object_at(ticket, "customer")
    email = text(customer.get("email"))
    customer_id = (
        identifier(ticket.get("customer_id")) or identifier(customer.get("id")) or email_as_customer(email)
    )
    if customer_id is None:
        raise InvalidEvent("ticket.customer_id: the ticket names neither a customer nor an email address")
    delivery_id = identifier(header(delivery.headers, DELIVERY)) or f"ticket:{ticket_id}:{state}"
    closed = {
        "ticket_id": ticket_id,
        "customer_id": customer_id,
        "email": email,
        "name": full_name(customer.get("firstname"), customer.get("lastname")),
        "agent_email": text(object_at(ticket, "owner").get("email")),
        "status": CLOSED,
        "closed_at": text(ticket.get("close_at")) or text(ticket.get("updated_at")),
        "account_id": _organization(ticket.get("organization_id")),
        "attributes": attributes(
            group=text(object_at(ticket, "group").get("name")) or text(ticket.get("group")),
            priority=_name(ticket.get("priority")),
        ),
    }
    return [
        build_event(
            platform=PLATFORM,
            delivery_id=delivery_id,
            event_type=TICKET_CLOSED,
            delivery=delivery,
            data=closed,
        )
    ]


def _name(value: Any) -> str | None:
    """A state, group or priority: the default payload sends the state as its name and the others
    as objects with a ``name``. Lower-cased (``2 normal``)."""
    if isinstance(value, dict):
        value = value.get("name")
    name = text(value)
    return name.lower() if name else None


def _organization(value: Any) -> str | None:
    organization = identifier(value)
    return organization if organization not in (None, "0") else None
