"""Intercom: the ``conversation.admin.closed`` webhook topic as ``ticket.closed.v1``.

Intercom signs every notification with the app's client secret: ``X-Hub-Signature:
sha1=<hex HMAC-SHA1(client secret, raw body)>``. The body is a ``notification_event`` whose ``id``
(``notif_...``) a retry keeps, whose ``topic`` names the event and whose ``data.item`` is the
conversation. The conversation names its customer as ``user`` (API 1.x, with the email) or, from
API 2.0 on, as ``source.author`` (with the email) and ``contacts.contacts`` (ids only).
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
    build_event,
    email_as_customer,
    full_name,
    header,
    identifier,
    object_at,
    text,
    unix_time,
)

PLATFORM = "intercom"
SIGNATURE = "X-Hub-Signature"
CLOSED = "conversation.admin.closed"
PING = "ping"
_CUSTOMER_TYPES = frozenset({"user", "lead", "contact"})


def verify(secret: str, headers: Headers, body: bytes, now: datetime) -> None:
    problem = signatures.check_hub_signature(secret, header(headers, SIGNATURE), body, SIGNATURE)
    if problem is not None:
        raise Unauthorized(problem)


def map(delivery: Delivery) -> MapResult:
    notification = delivery.payload
    if not isinstance(notification, dict):
        raise InvalidEvent("an Intercom notification must be a JSON object")
    topic = text(notification.get("topic")) or ""
    if topic == PING:
        return Ignored("ping")
    if topic != CLOSED:
        return Ignored(f"Intercom topic {topic!r} is not handled: subscribe {CLOSED}")
    conversation = object_at(object_at(notification, "data"), "item")
    conversation_id = identifier(conversation.get("id"))
    if conversation_id is None:
        raise InvalidEvent("data.item.id: the notification names no conversation")
    email, name, customer_id = _customer(conversation)
    customer_id = customer_id or email_as_customer(email)
    if customer_id is None:
        raise InvalidEvent("data.item.user: the conversation names neither a contact id nor an email address")
    closed_at = _closed_at(conversation) or unix_time(notification.get("created_at"))
    delivery_id = identifier(notification.get("id")) or f"conversation:{conversation_id}:closed:{closed_at}"
    closed = {
        "ticket_id": conversation_id,
        "customer_id": customer_id,
        "email": email,
        "name": name,
        "agent_email": text(object_at(conversation, "assignee").get("email")),
        "status": "closed",
        "closed_at": closed_at,
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


def _customer(conversation: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(email, name, customer id): the company's own ``user_id`` where Intercom has one, else
    Intercom's contact id."""
    user = object_at(conversation, "user")
    if user:
        customer_id = identifier(user.get("user_id")) or identifier(user.get("id"))
        return text(user.get("email")), full_name(user.get("name")), customer_id
    author = object_at(object_at(conversation, "source"), "author")
    if text(author.get("type")) not in _CUSTOMER_TYPES:
        author = {}
    contacts = object_at(conversation, "contacts").get("contacts")
    contact = contacts[0] if isinstance(contacts, list) and contacts and isinstance(contacts[0], dict) else {}
    customer_id = (
        identifier(contact.get("external_id"))
        or identifier(contact.get("id"))
        or identifier(author.get("id"))
    )
    return text(author.get("email")), full_name(author.get("name")), customer_id


def _closed_at(conversation: dict[str, Any]) -> str | None:
    """When the close part was written, else when the conversation last changed."""
    parts = object_at(conversation, "conversation_parts").get("conversation_parts")
    if isinstance(parts, list):
        for part in reversed(parts):
            if isinstance(part, dict) and part.get("part_type") == "close":
                return unix_time(part.get("created_at"))
    return unix_time(conversation.get("updated_at"))
