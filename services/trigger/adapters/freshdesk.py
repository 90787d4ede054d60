"""Freshdesk automation-rule webhooks, with the body template in README.md.

Freshdesk does not sign webhooks. The rule sends our endpoint's secret as a header
(``X-NPS-Webhook-Token: <secret>`` or ``Authorization: Bearer <secret>``), compared in constant
time; only HTTPS keeps it secret on the way.

``{{triggered_event}}`` renders as Freshdesk's own non-JSON text, e.g. ``{status:{from:4,to:6}}``.
Only a change *to* resolved (4) or closed (5) closes a ticket for us: moving a ticket out of
resolved, or any other change, asks nothing of the trigger.
"""

from __future__ import annotations

import re
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
    object_at,
    text,
)

PLATFORM = "freshdesk"
TOKEN = "X-NPS-Webhook-Token"
WRAPPER = "freshdesk_webhook"
#: Freshdesk's built-in status codes; 6 and up are an account's custom statuses.
STATUSES = {2: "open", 3: "pending", 4: "resolved", 5: "closed"}
DONE = frozenset({4, 5})
_CODES = {name: code for code, name in STATUSES.items()}
_STATUS_CHANGE = re.compile(r"status\s*:\s*\{\s*from\s*:\s*([^,{}]*?)\s*,\s*to\s*:\s*([^,{}]*?)\s*\}")


def verify(secret: str, headers: Headers, body: bytes, now: datetime) -> None:
    presented = header(headers, TOKEN)
    if presented is None:
        authorization = header(headers, "Authorization") or ""
        if authorization[:7].lower() == "bearer ":
            presented = authorization[7:].strip()
    if not presented:
        raise Unauthorized(f"missing {TOKEN} header (or Authorization: Bearer <secret>)")
    if not signatures.same_secret(presented, secret):
        raise Unauthorized(f"{TOKEN} is not this endpoint's secret")


def status_change(triggered_event: str) -> tuple[int | None, int | None] | None:
    """``{status:{from:4,to:6}}`` -> (4, 6); None when the event is not a status change. A status
    given by name (``Resolved``) reads as its code; an unknown one as None."""
    match = _STATUS_CHANGE.search(triggered_event)
    if match is None:
        return None
    return _code(match.group(1)), _code(match.group(2))


def _code(value: str) -> int | None:
    value = value.strip().strip("'\"").lower()
    if value.isdigit():
        return int(value)
    return _CODES.get(value)


def map(delivery: Delivery) -> MapResult:
    payload = delivery.payload
    if not isinstance(payload, dict):
        raise InvalidEvent("a Freshdesk webhook body must be a JSON object")
    fields = object_at(payload, WRAPPER) or payload
    triggered = text(fields.get("triggered_event"))
    if triggered is not None:
        change = status_change(triggered)
        if change is None:
            return Ignored("the rule's triggered event is not a status change")
        before, after = change
        if after is None or after not in DONE:
            return Ignored(
                f"status changed from {_label(before)} to {_label(after)}, not to resolved or closed"
            )
        change_key = f"{before}-{after}"
    else:
        # A rule without {{triggered_event}}: fall back to the ticket's status as rendered.
        after = _code(text(fields.get("ticket_status")) or "")
        if after is None or after not in DONE:
            return Ignored("no triggered_event, and ticket_status is not Resolved or Closed")
        change_key = str(after)
    ticket_id = identifier(fields.get("ticket_id"))
    if ticket_id is None:
        raise InvalidEvent("ticket_id: the body names no ticket; see the template in the webhook docs")
    email = text(fields.get("requester_email"))
    customer_id = identifier(fields.get("requester_id")) or email_as_customer(email)
    if customer_id is None:
        raise InvalidEvent("requester_email: the body names neither the requester's id nor email")
    closed = {
        "ticket_id": ticket_id,
        "customer_id": customer_id,
        "email": email,
        "name": full_name(fields.get("requester_name")),
        "agent_email": text(fields.get("agent_email")),
        "status": STATUSES[after],
        "attributes": attributes(
            priority=(text(fields.get("ticket_priority")) or "").lower(), group=fields.get("ticket_group")
        ),
    }
    # Freshdesk sends no delivery id. The ticket and the change name the delivery, so a rule that
    # fires twice for one change is a duplicate (as is a re-resolve after a reopen: one survey).
    return [_event(f"ticket:{ticket_id}:{change_key}", delivery, closed)]


def _label(code: int | None) -> str:
    if code is None:
        return "an unknown status"
    return STATUSES.get(code, f"custom status {code}")


def _event(delivery_id: str, delivery: Delivery, data: dict[str, Any]) -> Event[Contract]:
    return build_event(
        platform=PLATFORM, delivery_id=delivery_id, event_type=TICKET_CLOSED, delivery=delivery, data=data
    )
