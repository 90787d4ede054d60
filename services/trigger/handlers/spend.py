"""What customers spent: intake records each purchase's amount in the purchases ledger, and every
survey request carries its customer's 12-month spend per currency (``context.spend_12m``).

The rules (minor units, rounding, the window, the cap) are ``services/trigger/domain/money.py``;
this module turns a batch's events into ledger rows and reads the snapshots back, in one insert and
one grouped query per batch. Each order the ledger actually added (not a repeat) is announced as
``purchase.recorded.v1`` through the outbox, in the same transaction: reporting's repurchase rate
is counted from them."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from libs.common.db import UnitOfWork
from libs.common.events import Contract, Event, Money, PurchaseCompleted, PurchaseRecorded
from services.trigger.domain.money import MAX_AMOUNT_MINOR, spend_since, spend_snapshot, to_minor_units
from services.trigger.repository import PurchaseRecord, TriggerRepository


def purchases_of(
    tenant_id: uuid.UUID, events: Iterable[Event[Contract]], now: datetime
) -> list[PurchaseRecord]:
    """The ledger rows of a batch: each purchase with an amount and a currency, once per order (the
    first in the batch, as the ledger keeps the first it recorded). A test order spent nothing, and
    a purchase without amount or currency says nothing of what was spent: neither is recorded.
    ``occurred_at`` is the purchase's own time, else the event's, else ``now``."""
    records: dict[str, PurchaseRecord] = {}
    for event in events:
        data = event.data
        if not isinstance(data, PurchaseCompleted) or data.test:
            continue
        if data.amount is None or data.currency is None or data.order_id in records:
            continue
        records[data.order_id] = PurchaseRecord(
            tenant_id=tenant_id,
            order_id=data.order_id,
            customer_id=data.customer_id,
            amount_minor=to_minor_units(data.amount, data.currency),
            currency=data.currency,
            occurred_at=data.occurred_at or event.envelope.time or now,
        )
    return list(records.values())


async def spend_snapshots(
    uow: UnitOfWork[TriggerRepository], tenant_id: uuid.UUID, customer_ids: Iterable[str], now: datetime
) -> dict[str, list[Money]]:
    """The 12-month spend of each of these customers up to ``now``, as a survey request carries it;
    customers with no known purchase are left out (their snapshot is null). One grouped query."""
    totals: defaultdict[str, list[tuple[str, int]]] = defaultdict(list)
    for row in await uow.repository.spend(tenant_id, customer_ids, spend_since(now)):
        totals[row.customer_id].append((row.currency, row.amount_minor))
    return {customer: snapshot for customer, rows in totals.items() if (snapshot := spend_snapshot(rows))}


async def record_and_read_spend(
    uow: UnitOfWork[TriggerRepository],
    tenant_id: uuid.UUID,
    events: Sequence[Event[Contract]],
    customer_ids: Iterable[str],
    now: datetime,
) -> dict[str, list[Money]]:
    """Record a batch's purchases, then read the snapshots of the customers it may survey: so the
    purchase that triggers a survey counts in the spend that survey carries."""
    purchases = purchases_of(tenant_id, events, now)
    added = await uow.repository.record_purchases(purchases)
    announce_purchases(uow, [p for p in purchases if (p.tenant_id, p.order_id) in added])
    return await spend_snapshots(uow, tenant_id, customer_ids, now)


#: Names the id of each order's ``purchase.recorded.v1``: one id per (tenant, order), whoever sends it.
_RECORDED_IDS = uuid.UUID("5b0c52d4-6f0e-4d1c-9c55-7d1f3e2a8b61")


def recorded_event_id(tenant_id: uuid.UUID, order_id: str) -> str:
    return str(uuid.uuid5(_RECORDED_IDS, f"{tenant_id}:{order_id}"))


def announce_purchases(uow: UnitOfWork[TriggerRepository], added: Iterable[PurchaseRecord]) -> None:
    """One ``purchase.recorded.v1`` per order the ledger added, keyed by its customer: so one
    customer's purchases stay in order, and a repeated order (never added twice) is never announced
    twice. Its id is derived from the order, so even a replay is one event to its consumers."""
    for purchase in added:
        uow.emit(
            PurchaseRecorded(
                customer_id=purchase.customer_id,
                order_id=purchase.order_id,
                # The contract's bound, as the snapshot caps it: the ledger keeps the exact amount.
                amount=Money(
                    amount_minor=min(purchase.amount_minor, MAX_AMOUNT_MINOR), currency=purchase.currency
                ),
                occurred_at=purchase.occurred_at,
            ),
            tenant_id=purchase.tenant_id,
            subject=purchase.customer_id,
            event_id=recorded_event_id(purchase.tenant_id, purchase.order_id),
            time=purchase.occurred_at,
        )
