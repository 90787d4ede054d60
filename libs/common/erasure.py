"""Right-to-erasure machinery every service shares: the keyed hash a receipt or a tombstone keeps in
place of a customer id, and the scrubbing of the tables every schema has (the outbox, published or
not, and held events). What each service erases of its own tables is its own handler's business
(README, "Privacy: erasure").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from libs.common.db import CommonTables, UnitOfWork
from libs.common.events import Contract, ErasureCompleted, ErasureRequested, ErasureService, Event
from libs.common.kafka import BatchHandler

#: What an erased address becomes where a contract requires one (``.invalid`` is reserved: RFC 2606,
#: no mail is ever delivered there).
ERASED_EMAIL = "erased@erased.invalid"

#: Fields of an event's data (or its survey context) that hold what a customer wrote or who they are.
_DROPPED = frozenset(
    {
        "name",
        "comment",
        "attributes",
        "account_name",
        "account_owner_email",
        "customer_name",
        "customer_email",
        "note",
        "body",
        "agent_email",
    }
)
_REPLACED = frozenset({"email"})


def customer_key(secret: str, tenant_id: uuid.UUID | str, customer_id: str) -> str:
    """A keyed hash (HMAC-SHA256) of a tenant's customer id: equal for the same customer, so a
    tombstone can be looked up, and not reversible or guessable from a list of ids without the key."""
    message = f"{tenant_id}:{customer_id}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def redact_data(data: dict[str, Any]) -> dict[str, Any]:
    """An event's data without the customer's personal fields. Optional ones are left out (the
    contracts drop ``None``); a required address becomes :data:`ERASED_EMAIL`, so the event still
    validates if it is published after the erasure."""
    redacted: dict[str, Any] = {}
    for key, value in data.items():
        if key in _DROPPED:
            continue
        if key in _REPLACED:
            redacted[key] = ERASED_EMAIL
        elif isinstance(value, dict):
            redacted[key] = redact_data(value)
        else:
            redacted[key] = value
    return redacted


def redact_payload(payload: bytes) -> bytes:
    """A stored CloudEvent (structured JSON) with its data redacted; anything else, which this
    platform never stores, is replaced whole rather than kept unread."""
    try:
        envelope = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return b"{}"
    if not isinstance(envelope, dict):
        return b"{}"
    if isinstance(envelope.get("data"), dict):
        envelope["data"] = redact_data(envelope["data"])
    return json.dumps(envelope, separators=(",", ":")).encode()


def _is_customers(payload: bytes, tenant_id: str, customer_id: str) -> bool:
    try:
        envelope = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(envelope, dict) or envelope.get("tenantid") != tenant_id:
        return False
    data = envelope.get("data")
    return isinstance(data, dict) and data.get("customer_id") == customer_id


async def scrub_common_tables(
    session: AsyncSession, tables: CommonTables, tenant_id: uuid.UUID, customer_id: str
) -> dict[str, int]:
    """Redact the customer's events in the outbox (published ones too: the table keeps them for a
    while) and among the events held for a tenant not known yet, and delete the keys of their DLQ
    copies, in the caller's transaction. Both
    are found by index: the outbox by ``(tenant_id, customer_id)``, held events by their Kafka key."""
    tenant = str(tenant_id)
    outbox = tables.outbox
    rows = (
        await session.execute(
            select(outbox.c.id, outbox.c.payload).where(
                outbox.c.tenant_id == tenant, outbox.c.customer_id == customer_id
            )
        )
    ).all()
    if rows:
        await session.execute(
            update(outbox).where(outbox.c.id == bindparam("row_id")).values(payload=bindparam("redacted")),
            [{"row_id": row.id, "redacted": redact_payload(row.payload)} for row in rows],
        )
    held = tables.held_events
    held_rows = [
        row
        for row in (
            await session.execute(
                select(held.c.id, held.c.payload).where(
                    held.c.tenant_id == tenant, held.c.key == customer_id.encode()
                )
            )
        ).all()
        if _is_customers(row.payload, tenant, customer_id)
    ]
    if held_rows:
        await session.execute(
            update(held).where(held.c.id == bindparam("row_id")).values(payload=bindparam("redacted")),
            [{"row_id": row.id, "redacted": redact_payload(row.payload)} for row in held_rows],
        )
    # Their DLQ copies on the broker cannot be rewritten; without their keys they cannot be read.
    keys = tables.dlq_keys
    shredded = await session.execute(
        delete(keys).where(keys.c.tenant_id == tenant, keys.c.customer_id == customer_id)
    )
    return {
        "outbox_events": len(rows),
        "held_events": len(held_rows),
        "dead_letters": int(getattr(shredded, "rowcount", 0) or 0),
    }


#: A service's own part of an erasure, in the consumer's transaction: the counts of rows it removed
#: or anonymised, by kind (a closed set of names per service).
EraseCustomer = Callable[[UnitOfWork[Any], uuid.UUID, ErasureRequested, datetime], Awaitable[dict[str, int]]]


def erasure_consumer(service: ErasureService, erase: EraseCustomer) -> BatchHandler:
    """The batch handler of a service's ``erasures`` consumer (topic ``nps.erasures``): each request
    is erased in the batch's one transaction (the runner has claimed the event ids, so a redelivery
    is not erased twice), the shared tables are scrubbed, and the completion is announced through
    the outbox with the counts. Completions of other services on the same topic are ignored."""

    async def handle(events: list[Event[Contract]], uow: UnitOfWork[Any]) -> None:
        for event in events:
            if not isinstance(event.data, ErasureRequested):
                continue
            now = datetime.now(UTC)
            counts = await erase(uow, event.tenant, event.data, now)
            counts.update(
                await scrub_common_tables(uow.session, uow.tables, event.tenant, event.data.customer_id)
            )
            uow.emit(
                ErasureCompleted(
                    erasure_id=event.data.erasure_id, service=service, counts=counts, completed_at=now
                ),
                tenant_id=event.tenant,
                subject=str(event.data.erasure_id),
                # One completion per request and service, whatever the redeliveries.
                event_id=f"erasure-completed:{event.data.erasure_id}:{service}",
            )
            uow.count(completed)

    completed = _completed_counter(service)
    return handle


_COMPLETED: dict[str, Counter] = {}


def _completed_counter(service: str) -> Counter:
    # One per service, made once per process however often a service is built (tests build many).
    if service not in _COMPLETED:
        _COMPLETED[service] = Counter(
            f"nps_{service}_erasures_completed_total", "Customer erasures this service did its part of"
        )
    return _COMPLETED[service]
