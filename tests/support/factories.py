"""Factories of what the trigger is sent: purchase and ticket events as a shop posts them (CloudEvents
JSON, as ``POST /v1/events`` takes them), and the candidates its domain rules decide on.

Every id that a test does not name is unique, so tests keep apart without cleaning up.
"""

from __future__ import annotations

import uuid
from typing import Any

from libs.common.events import PURCHASE_COMPLETED, TICKET_CLOSED
from services.trigger.domain.rules import Candidate


def cloud_event(
    event_type: str,
    data: dict[str, Any],
    customer: str,
    *,
    event_id: str | None = None,
    source: str = "/shop",
    tenant: str | None = None,
) -> dict[str, Any]:
    """One event of ``event_type`` about ``customer`` (its subject); ``tenant`` sets ``tenantid``,
    which a Kafka producer must send and the HTTP API takes from the key."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id or uuid.uuid4().hex,
        "source": source,
        "type": event_type,
        "subject": customer,
        "data": data,
    }
    if tenant:
        event["tenantid"] = tenant
    return event


def purchase(
    customer: str,
    *,
    event_id: str | None = None,
    email: str | None = "jane@example.com",
    tenant: str | None = None,
    order_id: str | None = None,
    source: str = "/shop",
    **data: Any,
) -> dict[str, Any]:
    """A ``purchase.completed.v1`` of ``customer``: a new order unless ``order_id`` is given, without
    an email address when ``email`` is None; ``data`` adds fields (``locale``, ``name``, ...)."""
    fields = {"order_id": order_id or uuid.uuid4().hex, **data}
    return _customer_event(PURCHASE_COMPLETED, customer, email, fields, event_id, source, tenant)


def ticket(
    customer: str,
    *,
    event_id: str | None = None,
    email: str | None = None,
    tenant: str | None = None,
    ticket_id: str | None = None,
    source: str = "/shop",
    **data: Any,
) -> dict[str, Any]:
    """A ``ticket.closed.v1`` of ``customer``: a new ticket unless ``ticket_id`` is given; without an
    email address unless ``email`` is given (the trigger then looks the customer up)."""
    fields = {"ticket_id": ticket_id or uuid.uuid4().hex, **data}
    return _customer_event(TICKET_CLOSED, customer, email, fields, event_id, source, tenant)


def _customer_event(
    event_type: str,
    customer: str,
    email: str | None,
    fields: dict[str, Any],
    event_id: str | None,
    source: str,
    tenant: str | None,
) -> dict[str, Any]:
    """An event whose data is ``fields``, the customer id and, unless it is None, the email address."""
    data = {**fields, "customer_id": customer, **({"email": email} if email else {})}
    return cloud_event(event_type, data, customer, event_id=event_id, source=source, tenant=tenant)


def purchase_candidate(
    event_id: str,
    customer: str,
    email: str | None = "jane@example.com",
    *,
    order: str | None = None,
    invitation_id: str | None = None,
    **data: Any,
) -> Candidate:
    """A purchase as the trigger's rules see it (``decide`` takes a list of these); a ``test`` field in
    ``data`` marks it a test event."""
    return Candidate(
        invitation_id=invitation_id,
        event_id=event_id,
        event_type=PURCHASE_COMPLETED,
        customer_id=customer,
        email=email,
        source_ref=f"order:{order or event_id}",
        data=data,
        is_test=bool(data.get("test")),
    )
