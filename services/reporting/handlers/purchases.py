"""The ``purchases`` consumer: the purchases the trigger recorded (``purchase.recorded.v1`` on
``nps.purchases-recorded``), matched to the answers of their customers for the repurchase rate
(:mod:`services.reporting.domain.repurchase`).

Answers and purchases may arrive in either order, so both sides look for the other:

- a batch of purchases is kept in ``reporting.purchases`` (once per tenant and order, the first
  recorded), and each answer of the customers of those it added given within the year before one
  of them keeps the earliest as its first repurchase (:meth:`ReportingRepository.mark_repurchases`);
- a batch of answers, once projected, looks up the purchases already kept for the year after each
  (:func:`match_answers`, called by the read model).

Either statement keeps the earlier of the stored first repurchase and the one it found, so repeats,
replays and any arrival order end in the same state. Each returns the answers it changed, and the
rate's daily rollup (``reporting.repurchase_days``) moves by exactly those, in the same
transaction (:func:`repurchase_changes`); the read model moves it too when an answer is stored or
revised. Both take a transaction lock per (tenant,
customer) first: an answer and a purchase of one customer handled at the same time by the two
consumers are handled one after the other, and the second sees what the first committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable

from prometheus_client import Counter

from libs.common.db import UnitOfWork
from libs.common.events import Contract, Event, PurchaseRecorded
from services.reporting.domain.repurchase import RepurchaseTally, repurchase_tally
from services.reporting.domain.rollups import AnswerVersion, DayKey, moves
from services.reporting.models import RecordedPurchase, Response
from services.reporting.repository import ReportingRepository, Repurchased

#: One answer's change: (tenant, the version the rollup counted before or None, the one stored now).
AnswerChange = tuple[uuid.UUID, AnswerVersion | None, AnswerVersion]

PURCHASES_CONSUMER = "purchases"

PURCHASES = Counter("nps_reporting_purchases_total", "Recorded purchases received for the repurchase rate")


def purchases_of(events: Iterable[Event[Contract]]) -> list[RecordedPurchase]:
    """One row per (tenant, order), the first seen in the batch (as the table keeps the first)."""
    purchases: dict[tuple[uuid.UUID, str], RecordedPurchase] = {}
    for event in events:
        data = event.data
        if isinstance(data, PurchaseRecorded):
            purchases.setdefault(
                (event.tenant, data.order_id),
                RecordedPurchase(
                    tenant_id=event.tenant,
                    order_id=data.order_id,
                    customer_id=data.customer_id,
                    occurred_at=data.occurred_at,
                ),
            )
    return list(purchases.values())


async def record(events: list[Event[Contract]], uow: UnitOfWork[ReportingRepository]) -> None:
    """Keep a batch's purchases and mark the answers they are a repurchase of: three statements."""
    purchases = purchases_of(events)
    uow.count(PURCHASES, len(purchases))
    repository = uow.repository
    await repository.lock_purchasers((purchase.tenant_id, purchase.customer_id) for purchase in purchases)
    # Only what the table added: a repeat of an order under another id (maybe with another time)
    # is not a purchase of its own.
    marked = await repository.mark_repurchases(await repository.record_purchases(purchases))
    await move_rollup(repository, changes_of(marked))


async def lock_answers(repository: ReportingRepository, answers: Iterable[Response]) -> None:
    """Before a batch of answers is written: hold their customers' purchases back until it commits."""
    await repository.lock_purchasers(
        (answer.tenant_id, answer.customer_id) for answer in answers if answer.customer_id is not None
    )


async def match_answers(repository: ReportingRepository, answers: Collection[Response]) -> list[AnswerChange]:
    """After a batch of answers is written: each takes its first repurchase among the purchases
    already kept. Returns the answers that took one, for :func:`move_rollup`."""
    found = await repository.find_repurchases((answer.tenant_id, answer.response_id) for answer in answers)
    return changes_of(found)


def changes_of(repurchased: Iterable[Repurchased]) -> list[AnswerChange]:
    return [(answer.tenant_id, answer.before, answer.after) for answer in repurchased]


def counted(answer: AnswerVersion) -> RepurchaseTally:
    """What an answer adds to its row of the repurchase rollup."""
    return repurchase_tally(answer.responded_at, answer.repurchased_at)


def repurchase_changes(
    changes: Iterable[AnswerChange],
) -> dict[tuple[uuid.UUID, DayKey], RepurchaseTally]:
    """The repurchase rollup's rows these answers' changes move, summed, the zero ones left out."""
    summed: dict[tuple[uuid.UUID, DayKey], RepurchaseTally] = {}
    for tenant_id, before, after in changes:
        for row, change in moves(before, after, counted).items():
            key = (tenant_id, row)
            summed[key] = summed[key] + change if key in summed else change
    return {key: change for key, change in summed.items() if change}


async def move_rollup(repository: ReportingRepository, changes: Iterable[AnswerChange]) -> None:
    """Move the repurchase rollup by these answers' changes, summed: one statement."""
    await repository.add_to_repurchase_days(repurchase_changes(changes))
