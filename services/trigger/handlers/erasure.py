"""The right to erasure, as the trigger runs it (README, "Privacy: erasure").

The trigger takes the request (``DELETE /v1/customers/{id}`` or ``customer.erased.v1``), erases its
own part in the same transaction, keeps the receipt, and asks the other four services through the
outbox (``customer.erasure.requested.v1`` on ``nps.erasures``). Each answers with
``customer.erasure.completed.v1``, which completes its line of the receipt.

Races with new data: the erasure covers what was known up to ``requested_at``. An event about the
customer that happened before it and arrives afterwards (a webhook retry, a replay, a request
overtaken on another topic) is not taken in again: the receipt is also the tombstone, kept by a
keyed hash of the id. An event that happened after it (a new purchase) is new data, taken in as
from a new customer.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from libs.common.db import UnitOfWork
from libs.common.erasure import customer_key, scrub_common_tables
from libs.common.events import (
    ERASURE_SERVICES,
    Contract,
    ErasureCompleted,
    ErasureRequested,
    Event,
)
from services.trigger.models import Erasure
from services.trigger.repository import TriggerRepository

log = logging.getLogger(__name__)

PENDING = "pending"
COMPLETED = "completed"


def erasure_id_for(tenant_id: uuid.UUID | str, event_id: str) -> uuid.UUID:
    """The erasure a ``customer.erased.v1`` event starts: the same for a redelivery of it."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"nps:erasure:{tenant_id}:{event_id}")


async def request_erasure(
    uow: UnitOfWork[TriggerRepository],
    tenant_id: uuid.UUID,
    customer_id: str,
    *,
    requested_at: datetime,
    now: datetime,
    secret: str,
    origin: str,
    erasure_id: uuid.UUID | None = None,
) -> Erasure:
    """Erase the trigger's part now, keep the receipt, and ask the other services. The customer is
    locked as for a decision, so a purchase decided concurrently commits wholly before or after."""
    erasure_id = erasure_id or uuid.uuid4()
    repository = uow.repository
    await repository.lock_customers([(str(tenant_id), customer_id)])
    counts = await repository.erase_customer(tenant_id, customer_id)
    counts.update(await scrub_common_tables(uow.session, uow.tables, tenant_id, customer_id))
    services: dict[str, Any] = {
        service: {"status": PENDING, "completed_at": None, "counts": {}} for service in ERASURE_SERVICES
    }
    services["trigger"] = {"status": COMPLETED, "completed_at": now.isoformat(), "counts": counts}
    erasure = Erasure(
        id=erasure_id,
        tenant_id=tenant_id,
        customer_key=customer_key(secret, tenant_id, customer_id),
        requested_at=requested_at,
        received_at=now,
        origin=origin,
        services=services,
        completed_at=None,
    )
    await repository.add_erasure(erasure)
    uow.emit(
        ErasureRequested(erasure_id=erasure_id, customer_id=customer_id, requested_at=requested_at),
        tenant_id=tenant_id,
        subject=customer_id,
        event_id=f"erasure-requested:{erasure_id}",
    )
    return erasure


async def on_erasure_completed(events: list[Event[Contract]], uow: UnitOfWork[TriggerRepository]) -> None:
    """The ``erasures`` consumer: each service's completion fills its line of the receipt; the
    receipt is complete once every service's is."""
    completions = [event for event in events if isinstance(event.data, ErasureCompleted)]
    if not completions:
        return
    receipts = {
        erasure.id: erasure
        for erasure in await uow.repository.erasures_for_update(
            [event.data.erasure_id for event in completions if isinstance(event.data, ErasureCompleted)]
        )
    }
    for event in completions:
        done = event.data
        assert isinstance(done, ErasureCompleted)
        receipt = receipts.get(done.erasure_id)
        if receipt is None or receipt.tenant_id != event.tenant:
            log.warning("erasure.completion_unknown", extra={"service": done.service})
            continue
        services = dict(receipt.services)
        services[done.service] = {
            "status": COMPLETED,
            "completed_at": done.completed_at.isoformat(),
            "counts": dict(done.counts),
        }
        # A new dict, so the JSONB column is written.
        receipt.services = services
        if receipt.completed_at is None and all(
            services.get(service, {}).get("status") == COMPLETED for service in ERASURE_SERVICES
        ):
            receipt.completed_at = max(
                datetime.fromisoformat(services[service]["completed_at"]) for service in ERASURE_SERVICES
            )
    await uow.session.flush()


def event_time(event: Event[Contract], now: datetime) -> datetime:
    """When what an event tells happened: its own time field, else the envelope's, else now."""
    for name in ("occurred_at", "closed_at"):
        value = getattr(event.data, name, None)
        if isinstance(value, datetime):
            return value
    return event.envelope.time or now


async def erased_before(
    uow: UnitOfWork[TriggerRepository],
    tenant_id: uuid.UUID,
    events: Sequence[Event[Contract]],
    *,
    secret: str,
    now: datetime,
) -> set[str]:
    """The ids of these events that are about a customer erased after they happened."""
    keys = {
        event.id: customer_key(secret, tenant_id, customer)
        for event in events
        if isinstance(customer := getattr(event.data, "customer_id", None), str)
    }
    erased = await uow.repository.erased_until(tenant_id, keys.values())
    if not erased:
        return set()
    return {
        event.id
        for event in events
        if event.id in keys
        and (erased_at := erased.get(keys[event.id])) is not None
        and event_time(event, now) <= erased_at
    }
